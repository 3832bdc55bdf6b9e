"""A vendor's member can act for the vendor (okada.core.account_powers): with the account's
password one gets a personal API token (POST /api/v1/auth/token) and sells, stocks and takes
orders as the vendor, though the account usually holds no Django permission. So the users' admin
leaves a member's account (its password, activity, deletion) only to an editor who could make
themselves a member of any vendor anyway."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from okada.core import account_powers

from .models import VendorMember

# `catalog.add_vendormember` is what vendor_member_add asks, and with it one adds anyone, oneself
# included, to any vendor as its owner: holding it, one holds every vendor's power already.
# `catalog.change_vendormember` is not enough: it changes the role of an existing membership or
# restores a removed one, never makes someone the member of a vendor they were never in.
MEMBER_PERMISSION = "catalog.add_vendormember"


def _is_member(account: Any) -> bool:
    # A live membership only (the API's tokens need one): a former member is an account like any.
    return VendorMember.objects.filter(user_id=account.pk).exists()


def register() -> None:
    account_powers.register(
        account_powers.Power(
            key="catalog.vendor_member",
            permission=MEMBER_PERMISSION,
            held=_is_member,
            refusal=_(
                "This account is a vendor's member: with its password one acts for the vendor "
                "through the API. Only someone who may add vendor members, or a superuser, may "
                "change it, set its password or delete it: ask one of them."
            ),
        )
    )
