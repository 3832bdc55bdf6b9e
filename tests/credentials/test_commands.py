"""manage.py issue_api_key prints a working key once."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from okada.credentials import resolver
from okada.credentials.models import ApiKey
from tests.catalog.factories import VendorFactory

pytestmark = pytest.mark.django_db


def issue(*args: str) -> str:
    out, err = StringIO(), StringIO()
    call_command("issue_api_key", *args, stdout=out, stderr=err)
    assert "shown once" in err.getvalue()
    return out.getvalue().strip()


def test_a_vendor_key_with_chosen_scopes():
    vendor = VendorFactory(slug="chez-awa")
    secret = issue("--vendor", "chez-awa", "--name", "caisse", "--scopes", "products:read", "orders:read")
    credential = resolver.resolve(secret)
    assert credential is not None
    assert credential.actor.vendor_id == vendor.pk
    assert credential.scopes == {"products:read", "orders:read"}
    assert ApiKey.objects.get().name == "caisse"


def test_a_storefront_key():
    credential = resolver.resolve(issue("--storefront", "--expires-days", "30"))
    assert credential is not None
    assert credential.actor.role == "storefront"
    assert ApiKey.objects.get().expires_at is not None


def test_an_unknown_vendor_or_scope_is_refused():
    with pytest.raises(CommandError):
        issue("--vendor", "nobody")
    with pytest.raises(CommandError):
        issue("--storefront", "--scopes", "products:write")
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("days", ["3000000", "99999999999"])
def test_an_expiry_past_the_calendar_is_refused_clearly(days):
    with pytest.raises(CommandError, match="--expires-days"):
        issue("--storefront", "--expires-days", days)
    assert not ApiKey.objects.exists()


def test_a_name_longer_than_the_column_is_refused_not_cut():
    # It was cut to 100 characters without a word: the key's name in logs and the admin was not
    # the one the operator typed.
    with pytest.raises(CommandError, match=r"--name is 101 characters long: at most 100"):
        issue("--storefront", "--name", "x" * 101)
    assert not ApiKey.objects.exists()
    issue("--storefront", "--name", "y" * 100)
    assert ApiKey.objects.get().name == "y" * 100


@pytest.mark.parametrize("slug", ["", "  "])
def test_an_empty_vendor_slug_is_refused_not_read_as_storefront(slug):
    # `--vendor "$SLUG"` with SLUG unset issued a storefront key (it may place orders) instead of
    # refusing: an empty slug was read as no --vendor at all.
    VendorFactory(slug="chez-awa")
    with pytest.raises(CommandError, match="--vendor"):
        issue("--vendor", slug)
    assert not ApiKey.objects.exists()
