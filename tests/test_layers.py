"""The import-linter contracts (pyproject.toml, run by `make lint`) see every package we write."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def importlinter() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def layered_modules() -> set[str]:
    """Every module a layers contract names ("(sync) : backups" names sync and backups)."""
    named: set[str] = set()
    for contract in importlinter()["contracts"]:
        for layer in contract.get("layers", []):
            named |= {m.strip("() ") for m in re.split(r"[|:]", layer)}
    return named


def test_every_top_level_package_is_a_root_package_of_the_layer_contracts():
    # A package outside root_packages is invisible to the contracts: sync/ or backups/ could then
    # import anything. (root_packages cannot name a package before it exists.)
    packages = {init.parent.name for init in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(importlinter()["root_packages"])


def test_every_top_level_package_and_okada_app_has_its_place_in_the_layers():
    # An app left out of the layers may import anything and be imported by anything: okada.core
    # could import okada.credentials, or orders import okada.health, and lint would still pass.
    packages = {init.parent.name for init in ROOT.glob("*/__init__.py")} - {"tests", "okada"}
    okada_apps = {f"okada.{apps.parent.name}" for apps in (ROOT / "okada").glob("*/apps.py")}
    assert {"okada.core", "okada.credentials", "okada.health", "okada.partitions", "okada.demo"} <= okada_apps
    assert packages | okada_apps <= layered_modules()
