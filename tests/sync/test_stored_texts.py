"""Why a pushed mutation was rejected reads in the admin reader's language, whatever language
the device pushed in; the device itself gets the code only (it has its own words for it)."""

from __future__ import annotations

import uuid

import pytest
from django.utils import translation

from catalog import services as catalog
from catalog.services import product_soft_delete
from okada.core.actors import Actor
from okada.core.errors import DomainError
from okada.core.texts import text_of
from sync.models import Mutation
from tests.catalog.factories import ProductFactory, VendorFactory
from tests.credentials.factories import vendor_api
from tests.languages import reads_in_its_language
from tests.orders.factories import OrderFactory
from tests.sync.factories import register_device
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
        (
            {"name": "shelf.dust", "args": {}},
            "Mutation inconnue\u00a0: shelf.dust",
            "Unknown mutation shelf.dust",
        ),
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


def _refusals(vendor) -> list[tuple[dict, str, str]]:
    """Mutations the services refuse, with why in French and in English (the parameters are the
    device's or the server's values, a status is a translated word)."""
    ProductFactory(vendor=vendor, sku="SKU-PRIS")
    gone = ProductFactory(vendor=vendor)
    product_soft_delete(product=gone, actor=Actor.system("test"))
    full = ProductFactory(vendor=vendor, initial_stock=catalog.MAX_ON_HAND - 5)
    order = OrderFactory(vendor=vendor)
    most = catalog.MAX_ON_HAND
    return [
        (
            {"name": "stock.adjust", "args": {"product_id": str(gone.pk), "delta": 1}},
            "Ce produit est supprimé\u00a0: restaurez-le avant de modifier son stock.",
            "This product is deleted: restore it before changing its stock.",
        ),
        (
            {
                "name": "product.create",
                "args": {"id": str(uuid.uuid4()), "sku": "SKU-PRIS", "name": "Savon", "price_xaf": 500},
            },
            "Ce vendeur a déjà un produit de référence SKU-PRIS.",
            "This vendor already has a product with SKU SKU-PRIS.",
        ),
        (
            {"name": "stock.adjust", "args": {"product_id": str(full.pk), "delta": 10}},
            f"Le stock ne peut pas dépasser {most} unités.",
            f"The stock cannot hold more than {most} units.",
        ),
        (
            {
                "name": "order.transition",
                "args": {"order_id": str(order.pk), "to": "delivered", "base_status": "pending"},
            },
            "Une commande ne peut pas passer de «\u00a0en attente\u00a0» à «\u00a0livrée\u00a0».",
            "An order cannot go from pending to delivered.",
        ),
        (
            {
                "name": "product.update",
                "args": {
                    "product_id": str(full.pk),
                    "base_version": full.version,
                    "fields": {"colour": "red"},
                },
            },
            "Ces champs ne peuvent pas être modifiés\u00a0: colour",
            "These fields cannot be changed: colour",
        ),
    ]


@pytest.mark.parametrize("device_language", ["fr", "en"])
def test_the_services_refusals_read_in_the_viewers_language_whatever_the_device_spoke(
    device_language, client, admin_user
):
    vendor = VendorFactory()
    api = vendor_api(vendor)
    device_id = register(api)
    refusals = _refusals(vendor)
    response = api.post(
        "/sync/push",
        {"device_id": device_id, "mutations": [{"id": i, **m} for i, (m, _, _) in enumerate(refusals, 1)]},
        HTTP_ACCEPT_LANGUAGE=device_language,
    )
    assert response.status_code == 200, response.content
    assert [r["status"] for r in response.json()["results"]] == ["rejected"] * len(refusals)

    client.force_login(admin_user)
    for i, (_, french, english) in enumerate(refusals, 1):
        stored = Mutation.objects.get(mutation_id=i)
        reads_in_its_language(client, f"/admin/sync/mutation/{stored.pk}/change/", french, english)


def _stale_version(vendor) -> DomainError:
    product = ProductFactory(vendor=vendor)
    with pytest.raises(catalog.VersionConflict) as refused:
        catalog.product_update(
            product=product,
            data={"name": "Savon"},
            actor=Actor.system("test"),
            expected_version=product.version + 3,
        )
    return refused.value


def _beyond_on_hand(vendor) -> DomainError:
    product = ProductFactory(vendor=vendor, initial_stock=2)
    with pytest.raises(catalog.InsufficientStock) as refused:
        catalog.stock_adjust(product=product, delta=-7, reason="casse", actor=Actor.system("test"))
    return refused.value


def _stale_count(vendor) -> DomainError:
    product = ProductFactory(vendor=vendor, initial_stock=4)
    with pytest.raises(catalog.StockChanged) as refused:
        catalog.stock_count(product=product, on_hand=3, expected_on_hand=9, actor=Actor.system("test"))
    return refused.value


@pytest.mark.parametrize("raised_in", ["fr", "en"])
@pytest.mark.parametrize(
    ("refuse", "french", "english"),
    [
        (
            _stale_version,
            "Le produit a changé depuis la version 4 (version actuelle\u00a0: 1).",
            "The product changed since version 4 (now 1).",
        ),
        (
            _beyond_on_hand,
            "Impossible de retirer 7 unités\u00a0: 2 en rayon, 0 réservées.",
            "Cannot remove 7 units: 2 on hand, 0 reserved.",
        ),
        (
            _stale_count,
            "Le stock a changé\u00a0: 4 en rayon, et non 9. Recomptez.",
            "Stock changed: 4 on hand, not 9. Count again.",
        ),
    ],
)
def test_a_refusal_with_parameters_is_stored_in_no_language(
    raised_in, refuse, french, english, client, admin_user
):
    """Refusals a push turns into conflicts rather than rejections (a stale count, stock short)
    still store the same way: raised in one language, stored as it is, shown in the reader's."""
    vendor = VendorFactory()
    with translation.override(raised_in):
        refused = refuse(vendor)
    mutation = Mutation.objects.create(
        device=register_device(vendor),
        mutation_id=1,
        name="stock.adjust",
        status=Mutation.Status.REJECTED,
        code=refused.code,
        message=text_of(refused).stored,
    )
    client.force_login(admin_user)
    reads_in_its_language(client, f"/admin/sync/mutation/{mutation.pk}/change/", french, english)


@pytest.mark.parametrize(
    ("fields", "french", "english"),
    [
        (
            {"price_xaf": 0},
            "price_xaf\u00a0: Assurez-vous que cette valeur est supérieure ou égale à\xa01.",
            "price_xaf: Ensure this value is greater than or equal to 1.",
        ),
        (
            {"name": "S" * 201},
            "name\u00a0: Le nombre de caractères de ce champ ne doit pas dépasser 200.",
            "name: The number of characters in this field must not exceed 200.",
        ),
        (
            {"unit": "crate"},
            "unit\u00a0: «\xa0crate\xa0» n\u2019est pas un choix valide.",  # quotes escaped by the page
            "unit: &quot;crate&quot; is not a valid choice.",
        ),
        (  # the device's own input is kept as sent, never read as a number
            {"unit": "007"},
            "unit\u00a0: «\xa0007\xa0» n\u2019est pas un choix valide.",
            "unit: &quot;007&quot; is not a valid choice.",
        ),
        (  # too many digits for int(): once a 500 on every retry of the push
            {"unit": "1" * 5000},
            "unit\u00a0: «\xa0" + "1" * 5000 + "\xa0» n\u2019est pas un choix valide.",
            "unit: &quot;" + "1" * 5000 + "&quot; is not a valid choice.",
        ),
    ],
)
def test_a_field_the_api_rules_refuse_reads_in_the_viewers_language_whatever_the_device_spoke(
    fields, french, english, client, admin_user
):
    """The API's rules for product fields (DRF: a message with a parameter, formatted at once in
    the device's language) are stored as their msgid and parameters."""
    vendor = VendorFactory()
    product = ProductFactory(vendor=vendor)
    api = vendor_api(vendor)
    device_id = register(api)
    response = api.post(
        "/sync/push",
        {
            "device_id": device_id,
            "mutations": [
                {
                    "id": 1,
                    "name": "product.update",
                    "args": {
                        "product_id": str(product.pk),
                        "base_version": product.version,
                        "fields": fields,
                    },
                }
            ],
        },
        HTTP_ACCEPT_LANGUAGE="fr",
    )
    assert response.status_code == 200, response.content
    assert response.json()["results"] == [
        {"id": 1, "status": "rejected", "code": "invalid", "conflict_id": None}
    ]

    client.force_login(admin_user)
    stored = Mutation.objects.get()
    reads_in_its_language(client, f"/admin/sync/mutation/{stored.pk}/change/", french, english)


@pytest.mark.parametrize(
    ("language", "message"),
    [
        ("fr", "Le nombre de caractères de ce champ ne doit pas dépasser 200."),
        ("en", "The number of characters in this field must not exceed 200."),
    ],
)
def test_a_refusal_of_device_fields_answers_in_the_language_of_the_caller(language, message):
    """What the refusal says when it is raised (the errors of an answer, a message in the admin
    that resolves a conflict) is in the caller's language; only what is stored has none."""
    from okada.core.errors import InvalidInput
    from sync.services import product_fields

    with translation.override(language), pytest.raises(InvalidInput) as refused:
        product_fields({"name": "S" * 201, "category_id": "nope"})
    assert refused.value.errors["name"] == [message]
    assert set(refused.value.errors) == {"name", "category_id"}
    assert refused.value.message == ("name\u00a0: " if language == "fr" else "name: ") + message


def _nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_product_attributes_the_api_rules_refuse_keep_their_parameters_in_no_language(client, admin_user):
    """A refusal of `attributes` with a parameter (too deep) is kept as its msgid and parameter,
    not as the English words the check was run in: read in the reader's language."""
    from catalog.apis import ProductFieldsIn
    from okada.core.api.serializers import validated_or_texts
    from okada.core.errors import InvalidInput
    from okada.core.fields import MAX_JSON_DEPTH
    from okada.core.texts import Text
    from sync.services import product_fields

    deep = _nested(MAX_JSON_DEPTH + 1)
    _valid, refused = validated_or_texts(ProductFieldsIn, {"attributes": deep}, partial=True)
    assert refused == {"attributes": [Text("Nested at most %(n)d levels deep.", n=MAX_JSON_DEPTH)]}

    with translation.override("fr"), pytest.raises(InvalidInput) as raised:
        product_fields({"attributes": deep})
    assert raised.value.errors["attributes"] == [f"Au plus {MAX_JSON_DEPTH} niveaux d\u2019imbrication."]
    vendor = VendorFactory()
    mutation = Mutation.objects.create(
        device=register_device(vendor),
        mutation_id=1,
        name="product.update",
        status=Mutation.Status.REJECTED,
        code=raised.value.code,
        message=text_of(raised.value).stored,
    )
    client.force_login(admin_user)
    reads_in_its_language(
        client,
        f"/admin/sync/mutation/{mutation.pk}/change/",
        f"attributes\u00a0: Au plus {MAX_JSON_DEPTH} niveaux d\u2019imbrication.",
        f"attributes: Nested at most {MAX_JSON_DEPTH} levels deep.",
    )
