"""okada.credentials.services and resolver: hashed keys, scopes, revocation, expiry, last use."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from okada.core.actors import Actor, acting_as
from okada.core.errors import InvalidInput, NotAllowed, NotAuthenticated, NotFound
from okada.credentials import resolver
from okada.credentials.models import ApiKey, PersonalToken
from okada.credentials.services import (
    api_key_issue,
    api_key_revoke,
    personal_token_issue,
    personal_token_revoke,
    personal_tokens_prune,
)
from tests.catalog.factories import UserFactory, VendorFactory
from tests.credentials.factories import OPERATOR

pytestmark = pytest.mark.django_db


def test_a_key_is_stored_only_as_its_hash_and_resolves_to_a_vendor_actor():
    vendor = VendorFactory()
    issued = api_key_issue(name="erp", vendor=vendor, actor=OPERATOR)
    row = ApiKey.objects.get()
    assert issued.secret.startswith(f"okk_{row.prefix}_")
    assert issued.secret not in str(ApiKey.objects.values().get())
    credential = resolver.resolve(issued.secret)
    assert credential is not None
    assert credential.actor == Actor(role="vendor", vendor_id=vendor.pk, label="erp")
    assert credential.scope_key == f"key:{row.pk}"
    assert "products:write" in credential.scopes
    assert resolver.resolve(issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B")) is None


def test_a_storefront_key_acts_as_the_storefront_with_its_scopes():
    issued = api_key_issue(name="web", actor=OPERATOR)
    credential = resolver.resolve(issued.secret)
    assert credential is not None
    assert credential.actor == Actor(role="storefront", label="web")
    assert credential.scopes == {"products:read", "orders:read", "orders:write", "orders:place"}
    with pytest.raises(InvalidInput):
        api_key_issue(name="web", scopes=["products:write"], actor=OPERATOR)


def test_revoked_expired_and_deleted_vendors_keys_stop_working():
    vendor = VendorFactory()
    revoked = api_key_issue(name="a", vendor=vendor, actor=OPERATOR)
    api_key_revoke(key=revoked.key, actor=OPERATOR)
    assert resolver.resolve(revoked.secret) is None
    expiring = api_key_issue(
        name="b", vendor=vendor, actor=OPERATOR, expires_at=timezone.now() + timedelta(hours=1)
    )
    assert resolver.resolve(expiring.secret) is not None
    ApiKey.objects.filter(pk=expiring.key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert resolver.resolve(expiring.secret) is None
    live = api_key_issue(name="c", vendor=vendor, actor=OPERATOR)
    with acting_as(reason="test"):
        vendor.delete()
    assert resolver.resolve(live.secret) is None


def test_a_deleted_vendor_gets_no_new_key_even_from_a_form_opened_before_the_delete():
    vendor = VendorFactory()
    with acting_as(reason="test"):
        type(vendor).objects.get(pk=vendor.pk).delete()
    with pytest.raises(NotFound) as refused:
        api_key_issue(name="late", vendor=vendor, actor=OPERATOR)  # the object read before the delete
    assert "deleted vendor gets no new API keys" in str(refused.value.message)
    assert not ApiKey.objects.exists()


def test_only_permitted_staff_issue_and_revoke_keys():
    clerk = UserFactory(is_staff=True)
    with pytest.raises(NotAllowed):
        api_key_issue(name="x", actor=Actor.for_staff_user(clerk))
    with pytest.raises(NotAllowed):
        api_key_issue(name="x", actor=Actor(role="vendor", vendor_id=VendorFactory().pk))
    issued = api_key_issue(name="x", actor=OPERATOR)
    with pytest.raises(NotAllowed):
        api_key_revoke(key=issued.key, actor=Actor.for_staff_user(clerk))
    assert ApiKey.objects.get().revoked_at is None


def test_last_used_at_is_written_at_most_once_a_minute():
    issued = api_key_issue(name="x", vendor=VendorFactory(), actor=OPERATOR)
    resolver.resolve(issued.secret)
    first = ApiKey.objects.get().last_used_at
    assert first is not None
    resolver.resolve(issued.secret)
    assert ApiKey.objects.get().last_used_at == first
    ApiKey.objects.update(last_used_at=timezone.now() - timedelta(seconds=61))
    resolver.resolve(issued.secret)
    later = ApiKey.objects.get().last_used_at
    assert later is not None
    assert later > first


def test_personal_tokens_need_a_vendor_member_and_expire():
    vendor = VendorFactory()
    member = UserFactory(username="awa")
    member.set_password("s3cret-pass")
    member.save()
    with pytest.raises(NotAuthenticated):
        personal_token_issue(username="awa", password="s3cret-pass")  # not a member yet
    vendor.members.create(user=member, role="manager")
    with pytest.raises(NotAuthenticated):
        personal_token_issue(username="awa", password="wrong")
    issued = personal_token_issue(username="awa", password="s3cret-pass")
    credential = resolver.resolve(issued.secret)
    assert credential is not None
    assert credential.actor == Actor(role="vendor", user=member, vendor_id=vendor.pk)
    assert issued.secret not in str(PersonalToken.objects.values().get())
    PersonalToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert resolver.resolve(issued.secret) is None


def test_a_removed_membership_or_a_revoked_token_stops_the_token():
    vendor = VendorFactory()
    member = UserFactory(username="ben")
    member.set_password("pw-12345678")
    member.save()
    membership = vendor.members.create(user=member)
    issued = personal_token_issue(username="ben", password="pw-12345678")
    membership.delete()
    assert resolver.resolve(issued.secret) is None
    vendor.members.create(user=member)
    assert resolver.resolve(issued.secret) is not None
    personal_token_revoke(token=issued.token, actor=Actor(role="vendor", user=member, vendor_id=vendor.pk))
    assert resolver.resolve(issued.secret) is None


def test_a_member_of_several_vendors_says_which():
    user = UserFactory(username="cho")
    user.set_password("pw-12345678")
    user.save()
    one, two = VendorFactory(), VendorFactory()
    one.members.create(user=user)
    two.members.create(user=user)
    with pytest.raises(InvalidInput):
        personal_token_issue(username="cho", password="pw-12345678")
    issued = personal_token_issue(username="cho", password="pw-12345678", vendor_slug=two.slug)
    assert issued.token.vendor == two


def test_tokens_expired_or_revoked_past_the_retention_are_pruned_and_the_rest_kept(settings):
    settings.OKADA_API_TOKEN_RETENTION_DAYS = 7
    now = timezone.now()
    user, vendor = UserFactory(), VendorFactory()

    def token(prefix: str, *, expires: timedelta, revoked: timedelta | None = None) -> PersonalToken:
        return PersonalToken.objects.create(
            user=user,
            vendor=vendor,
            prefix=prefix,
            token_hash="0" * 64,
            expires_at=now + expires,
            revoked_at=now + revoked if revoked is not None else None,
        )

    token("valid", expires=timedelta(hours=5))
    token("expiredrecent", expires=-timedelta(days=6))
    token("expiredlong", expires=-timedelta(days=8))
    token("revokedrecent", expires=timedelta(days=30), revoked=-timedelta(days=1))
    token("revokedlong", expires=timedelta(days=30), revoked=-timedelta(days=9))

    assert personal_tokens_prune(now=now) == 2
    assert set(PersonalToken.objects.values_list("prefix", flat=True)) == {
        "valid",
        "expiredrecent",
        "revokedrecent",
    }
    assert personal_tokens_prune(now=now) == 0  # idempotent

    settings.OKADA_API_TOKEN_RETENTION_DAYS = -3  # read as 0, never as "delete valid tokens too"
    assert personal_tokens_prune(now=now) == 2
    assert set(PersonalToken.objects.values_list("prefix", flat=True)) == {"valid"}


def test_revoking_a_token_the_prune_deleted_meanwhile_is_not_found():
    user, vendor = UserFactory(username="ebai"), VendorFactory()
    user.set_password("pw-12345678")
    user.save()
    vendor.members.create(user=user, role="owner")
    stale = personal_token_issue(username="ebai", password="pw-12345678").token  # read by the admin
    PersonalToken.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(days=30))
    assert personal_tokens_prune() == 1

    with pytest.raises(NotFound) as gone:
        personal_token_revoke(token=stale, actor=OPERATOR)
    assert gone.value.status == 404


def _change_password(user_pk: Any) -> None:
    user = get_user_model().objects.get(pk=user_pk)
    user.set_password("N0uveau-mot-2-passe")
    user.save()  # revokes the user's tokens, in this transaction


def _disable_password(user_pk: Any) -> None:
    user = get_user_model().objects.get(pk=user_pk)
    user.set_unusable_password()
    user.save()


def _deactivate(user_pk: Any) -> None:
    user = get_user_model().objects.get(pk=user_pk)
    user.is_active = False
    user.save(update_fields=["is_active"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", [_change_password, _disable_password, _deactivate])
def test_a_token_is_refused_when_the_password_changes_while_it_is_issued(change):
    # The change holds the user's row (its UPDATE) in a transaction that commits only once the
    # issue, on its own connection, has checked the old password (the change is not committed:
    # it still sees the old one) and waits for that row. Its revoke ran before any token existed;
    # a token issued after it would outlive the password it was taken with.
    from tests.concurrency import race

    vendor = VendorFactory()
    user = UserFactory(username="dede")
    user.set_password("pw-12345678")
    user.save()
    vendor.members.create(user=user)
    _, issued = race(
        lambda: change(user.pk), lambda: personal_token_issue(username="dede", password="pw-12345678")
    )
    assert isinstance(issued, NotAuthenticated), issued
    assert not PersonalToken.objects.filter(user=user).exists()
    # Nothing else was broken: with the current state a token is issued (or refused) as usual.
    if change is _change_password:
        assert personal_token_issue(username="dede", password="N0uveau-mot-2-passe").token.user == user
