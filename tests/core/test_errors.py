"""The one error shape: codes, statuses, messages, field errors; the README lists every code."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

from okada.core.errors import Conflict, DomainError, InvalidInput

README = Path(settings.BASE_DIR) / "README.md"
LOCAL_PACKAGES = ("okada", "catalog", "orders", "sync", "backups")


def _import_everything() -> None:
    """Import every module of our packages, so every DomainError subclass is registered."""
    for name in LOCAL_PACKAGES:
        try:
            package = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            if ".migrations." in info.name or info.name.endswith(".migrations"):
                continue
            if info.name in ("okada.settings.production", "okada.devservices"):
                continue  # production needs its environment; devservices is a script
            importlib.import_module(info.name)


def _readme_codes() -> dict[str, int]:
    section = README.read_text().split("## Errors", 1)[1].split("\n## ", 1)[0]
    return {code: int(status) for code, status in re.findall(r"^\| `(\w+)` \| (\d{3}) \|", section, re.M)}


def test_the_readme_lists_every_error_code_with_its_status():
    _import_everything()
    defined = {
        code: cls.status
        for code, cls in DomainError.registry.items()
        if not cls.__module__.startswith("tests.")
    }
    assert _readme_codes() == defined


# The codes DESIGN.md section 4 names, with their status: clients match on both. The README
# table follows the code (above), so a code renamed or moved to another status in both would
# pass there and still break every client written against the contract.
DESIGN_CODES = {
    "invalid": 400,
    "not_authenticated": 401,
    "not_allowed": 403,
    "not_found": 404,
    "version_conflict": 409,
    "out_of_stock": 409,
    "invalid_transition": 409,
    "awaiting_payment": 409,
    "sku_taken": 409,
    "idempotency_mismatch": 422,
    "throttled": 429,
}


def test_the_codes_the_contract_names_keep_their_status():
    _import_everything()
    defined = {code: cls.status for code, cls in DomainError.registry.items()}
    assert {code: defined.get(code) for code in DESIGN_CODES} == DESIGN_CODES


def test_the_base_class_cannot_be_raised_and_every_subclass_needs_a_code():
    with pytest.raises(TypeError):
        DomainError("no code")
    with pytest.raises(TypeError):

        class NoCode(DomainError):
            pass


def test_two_classes_cannot_share_a_code():
    with pytest.raises(TypeError):

        class AnotherNotFound(DomainError):
            code = "not_found"


def test_field_shorthand_and_errors_make_one_shape():
    err = InvalidInput("Bad price.", field="price_xaf")
    assert err.as_dict() == {
        "code": "invalid",
        "status": 400,
        "detail": "Bad price.",
        "errors": {"price_xaf": ["Bad price."]},
    }
    conflict = Conflict("Busy.", errors={"sku": ["taken"]}, current_version=3)
    assert conflict.as_dict() == {
        "code": "conflict",
        "status": 409,
        "detail": "Busy.",
        "errors": {"sku": ["taken"]},
        "current_version": 3,
    }


def test_a_message_is_rendered_in_the_language_active_when_raised():
    with translation.override("en"):
        english = InvalidInput().message
    assert english == "The input is not valid."
    assert isinstance(english, str)  # not a lazy proxy: safe to log and to serialise
