"""Why a pushed mutation was rejected reads in the admin reader's language, whatever language
the device pushed in; the device itself gets the code only (it has its own words for it)."""

from __future__ import annotations

import uuid

import pytest

from sync.models import Mutation
from tests.catalog.factories import VendorFactory
from tests.credentials.factories import vendor_api
from tests.languages import reads_in_its_language
from tests.sync.test_apis import register

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("device_language", ["fr", "en"])
@pytest.mark.parametrize(
    ("mutation", "french", "english"),
    [
        (
            {"name": "product.delete", "args": {"product_id": str(uuid.uuid4())}},
            "Produit introuvable",
            "No such product",
        ),
        ({"name": "shelf.dust", "args": {}}, "Mutation inconnue : shelf.dust", "Unknown mutation shelf.dust"),
    ],
)
def test_a_rejected_mutation_reads_in_the_viewers_language_whatever_the_device_spoke(
    device_language, mutation, french, english, client, admin_user
):
    api = vendor_api(VendorFactory())
    device_id = register(api)
    response = api.post(
        "/sync/push",
        {"device_id": device_id, "mutations": [{"id": 1, **mutation}]},
        HTTP_ACCEPT_LANGUAGE=device_language,
    )
    assert response.status_code == 200, response.content
    (result,) = response.json()["results"]
    assert result["status"] == "rejected" and result["code"] in ("not_found", "invalid")
    assert set(result) == {"id", "status", "code", "conflict_id"}  # no message reaches the device

    client.force_login(admin_user)
    stored = Mutation.objects.get()
    reads_in_its_language(client, f"/admin/sync/mutation/{stored.pk}/change/", french, english)
