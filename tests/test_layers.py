"""The import-linter contracts (pyproject.toml, run by `make lint`) see every package we write."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_top_level_package_is_a_root_package_of_the_layer_contracts():
    # A package outside root_packages is invisible to the contracts: sync/ or backups/ could then
    # import anything. (root_packages cannot name a package before it exists.)
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    packages = {init.parent.name for init in ROOT.glob("*/__init__.py")} - {"tests"}
    assert packages == set(config["root_packages"])
