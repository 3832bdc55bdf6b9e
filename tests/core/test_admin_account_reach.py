"""A vendor member's account is out of reach of an editor who could not become a member.

A vendor's owner usually holds no Django permission, yet with the account's password one gets a
personal API token (POST /api/v1/auth/token) and acts for the vendor. So a staff user who may edit
accounts (auth.change_user, held by no built-in role: a custom group could) but may not add vendor
members reads a member's account and is told whom to ask: its change form, its password form, its
delete page and the delete action refuse them (CSRF tokens posted, as a browser does), and
nothing changes. Who may add vendor members (or a superuser) edits it; a former member (the
membership removed) is an account like any other. The registry behind it:
okada.core.account_powers, filled by catalog.account_powers.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog.models import VendorMember
from catalog.services import vendor_member_add, vendor_member_remove
from tests.admin_client import csrf_client, csrf_post
from tests.catalog.factories import UserFactory, VendorFactory, staff_actor

pytestmark = pytest.mark.django_db

# The refusal, as the French admin says it (the page's default language).
REFUSAL_FR = "Seul quelqu\u2019un qui peut ajouter des membres aux vendeurs, ou un superutilisateur"
REFUSAL_EN = "Only someone who may add vendor members, or a superuser"
NEW_PASSWORD = {"password1": "N0uveau-mot-2-passe", "password2": "N0uveau-mot-2-passe"}


def _editor(*extra: str) -> Any:
    """May read, change and delete accounts (and `extra`: `app_label.codename`), nothing else."""
    editor = UserFactory(is_staff=True)
    names = ["auth.view_user", "auth.change_user", "auth.delete_user", *extra]
    editor.user_permissions.add(
        *(
            Permission.objects.get(content_type__app_label=name.split(".")[0], codename=name.split(".")[1])
            for name in names
        )
    )
    return editor


def _owner(username: str = "awa") -> Any:
    owner = UserFactory(username=username)
    owner.set_password("mot-de-passe-de-awa")
    owner.save()
    vendor_member_add(vendor=VendorFactory(), user=owner, role=VendorMember.Role.OWNER, actor=staff_actor())
    return owner


def _change_data(account: Any, **changes: Any) -> dict[str, Any]:
    """The account's change form as a superuser is shown it (every field editable), with `changes`."""
    root = csrf_client(UserFactory(username="root-reader", is_staff=True, is_superuser=True))
    form = root.get(f"/admin/auth/user/{account.pk}/change/").context["adminform"].form
    data: dict[str, Any] = {}
    for name, field in form.fields.items():
        value = form[name].value()
        if getattr(field.widget, "widgets", None):  # a date and a time: posted as name_0, name_1
            for i, part in enumerate(field.widget.decompress(value)):
                data[f"{name}_{i}"] = part.isoformat() if part else ""
        elif value is not None and value is not False:
            data[name] = [str(v) for v in value] if isinstance(value, list | tuple) else value
    return {**data, **changes}


def _state(account: Any) -> tuple[Any, ...]:
    account.refresh_from_db()
    return (account.username, account.password, account.is_active, account.first_name)


def _tries_everything(client: Client, account: Any) -> dict[str, int]:
    """Each way to take or drop the account, POSTed: the status codes of each."""
    url = f"/admin/auth/user/{account.pk}"
    deactivated = {k: v for k, v in _change_data(account, first_name="Pirate").items() if k != "is_active"}
    return {
        "change": csrf_post(client, f"{url}/change/", deactivated).status_code,
        "password": csrf_post(client, f"{url}/password/", NEW_PASSWORD).status_code,
        "delete": csrf_post(client, f"{url}/delete/", {"post": "yes"}).status_code,
        "delete_selected": csrf_post(
            client,
            "/admin/auth/user/",
            {"action": "delete_selected", "_selected_action": [str(account.pk)], "post": "yes"},
        ).status_code,
    }


def test_a_user_manager_cannot_take_over_a_vendor_owners_account():
    owner = _owner()
    before = _state(owner)
    client = csrf_client(_editor())
    url = f"/admin/auth/user/{owner.pk}"

    page = client.get(f"{url}/change/")
    assert page.status_code == 200  # they may read it...
    assert page.context["has_change_permission"] is False  # ...not edit it
    assert page.context["has_delete_permission"] is False
    assert REFUSAL_FR in page.content.decode()  # and are told whom to ask

    for path in ("password/", "delete/"):
        refused = client.get(f"{url}/{path}")
        assert refused.status_code == 403
        assert REFUSAL_FR in refused.content.decode()

    tried = _tries_everything(client, owner)
    assert {k: v for k, v in tried.items() if k != "delete_selected"} == {
        "change": 403,
        "password": 403,
        "delete": 403,
    }
    assert _state(owner) == before  # same password hash, still active, not renamed, not deleted
    assert VendorMember.objects.filter(user=owner).exists()

    # In English too, for who chose it.
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    english = client.get(f"{url}/password/")
    assert english.status_code == 403 and REFUSAL_EN in english.content.decode()


def test_the_same_user_manager_still_edits_a_plain_account():
    plain = UserFactory(username="binta")
    plain.set_password("ancien-mot")
    plain.save()
    client = csrf_client(_editor())
    url = f"/admin/auth/user/{plain.pk}"
    assert client.get(f"{url}/change/").context["has_change_permission"] is True
    assert client.get(f"{url}/password/").status_code == 200
    assert csrf_post(client, f"{url}/password/", NEW_PASSWORD).status_code == 302
    assert csrf_post(client, f"{url}/change/", _change_data(plain, first_name="Binta")).status_code == 302
    plain.refresh_from_db()
    assert plain.check_password(NEW_PASSWORD["password1"]) and plain.first_name == "Binta"


@pytest.mark.parametrize(
    "who",
    ["may add vendor members", "superuser"],
)
def test_who_could_become_a_member_anyway_edits_a_vendor_owners_account(who):
    owner = _owner()
    editor = (
        _editor("catalog.add_vendormember")
        if who == "may add vendor members"
        else UserFactory(is_staff=True, is_superuser=True)
    )
    client = csrf_client(editor)
    url = f"/admin/auth/user/{owner.pk}"
    page = client.get(f"{url}/change/")
    assert page.context["has_change_permission"] is True
    assert REFUSAL_FR not in page.content.decode()
    assert csrf_post(client, f"{url}/password/", NEW_PASSWORD).status_code == 302
    assert csrf_post(client, f"{url}/change/", _change_data(owner, first_name="Awa")).status_code == 302
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD["password1"]) and owner.first_name == "Awa"


def test_changing_vendor_members_roles_is_not_enough():
    # catalog.change_vendormember changes an existing member's role or restores a removed
    # membership: it makes no one the member of a vendor they were never in.
    owner = _owner()
    before = _state(owner)
    client = csrf_client(_editor("catalog.change_vendormember", "catalog.view_vendormember"))
    assert csrf_post(client, f"/admin/auth/user/{owner.pk}/password/", NEW_PASSWORD).status_code == 403
    assert _state(owner) == before


def test_a_former_member_is_in_reach_again():
    owner = _owner()
    member = VendorMember.objects.get(user=owner)
    vendor_member_remove(member=member, actor=staff_actor())
    assert VendorMember.all_objects.filter(pk=member.pk).exists()  # soft-deleted, still there
    client = csrf_client(_editor())
    assert csrf_post(client, f"/admin/auth/user/{owner.pk}/password/", NEW_PASSWORD).status_code == 302
    owner.refresh_from_db()
    assert owner.check_password(NEW_PASSWORD["password1"])


def test_a_members_change_page_asks_about_memberships_once():
    owner = _owner()
    client = csrf_client(_editor())
    url = f"/admin/auth/user/{owner.pk}/change/"
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    asked = [q["sql"] for q in ctx.captured_queries if '"catalog_vendormember"' in q["sql"]]
    assert len(asked) == 1, asked
    assert "EXISTS" in asked[0].upper() or "LIMIT 1" in asked[0].upper()


def test_the_users_list_makes_the_same_queries_for_few_or_many_members():
    client = csrf_client(_editor())

    def count() -> int:
        client.get("/admin/auth/user/")  # warms the process-wide caches (content types)
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/admin/auth/user/").status_code == 200
        return len(ctx.captured_queries)

    for n in range(2):
        _owner(f"owner{n}")
    few = count()
    for n in range(2, 14):
        _owner(f"owner{n}")
    assert count() == few
