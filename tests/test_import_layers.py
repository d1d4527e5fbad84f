"""The import contracts of pyproject.toml's [tool.importlinter] hold (`lint-imports`)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _contract(contract_id: str) -> dict:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return next(c for c in config["contracts"] if c["id"] == contract_id)


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_every_runtime_module_has_a_layer():
    """A new module of flautim.fl is placed in the layers, not left unchecked."""
    listed = {
        name.strip()
        for layer in _contract("fl-layers")["layers"]
        for name in layer.replace(":", "|").split("|")
    }
    package = ROOT / "flautim" / "fl"
    modules = set()
    for path in package.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            continue
        modules.add(".".join(parts))
    assert modules - listed == set(), "place these in the fl-layers contract of pyproject.toml"


def test_the_runtime_may_import_no_other_flautim_module():
    """The sandbox image holds flautim.fl alone: every other flautim module is forbidden to it."""
    forbidden = set(_contract("fl-runs-without-the-platform")["forbidden_modules"])
    siblings = {
        path.stem if path.is_file() else path.name
        for path in (ROOT / "flautim").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }
    missing = {f"flautim.{name}" for name in siblings - {"fl"}} - forbidden
    assert not missing, "forbid these to flautim.fl in pyproject.toml"
