"""The dependency rule of DESIGN.md: deployables import core; core imports no deployable; only the
CLI package (tradestream/cli/) wires deployables together.

Read from the source with ``ast``, every import statement wherever it stands (module level,
inside functions, under ``if TYPE_CHECKING``), so a lazy import cannot slip through.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOYABLES = ("producer", "ingest_api", "lambdas", "ml", "dashboard")
WIRING = ROOT / "tradestream" / "cli"


def imported_modules(path: Path, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in the file, relative imports resolved to absolute."""
    package = ".".join(path.relative_to(root).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                yield node.lineno, ".".join([*base, node.module or ""]).rstrip(".")
            else:
                yield node.lineno, node.module or ""


def core_modules() -> list[Path]:
    return sorted(p for p in (ROOT / "tradestream").rglob("*.py") if WIRING not in p.parents)


def deployable_imports(path: Path) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for line, module in imported_modules(path)
        if module.split(".")[0] in DEPLOYABLES
    ]


def test_the_rule_reader_sees_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    # GIVEN a module that imports deployables only inside a function, and a relative import
    module = tmp_path / "pkg" / "mod.py"
    module.parent.mkdir()
    module.write_text(
        "from . import sibling\n"
        "def f():\n"
        "    from ml.serve import start_in_thread\n"
        "    import producer.app\n"
    )

    # WHEN its imports are read
    seen = [m for _, m in imported_modules(module, tmp_path)]

    # THEN every one is found, the relative one resolved against its package
    assert seen == ["pkg", "ml.serve", "producer.app"]


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_imports_no_deployable(path: Path) -> None:
    # GIVEN a core module (tradestream/, the CLI package aside) WHEN its imports are read
    offending = deployable_imports(path)
    # THEN none of them is a deployable
    assert not offending, "core must not import deployables (wire them in tradestream/cli/):\n" + (
        "\n".join(offending)
    )


def test_the_cli_package_is_where_deployables_are_wired() -> None:
    # GIVEN the CLI package WHEN its imports are read
    wired = {m.split(".")[0] for p in WIRING.rglob("*.py") for _, m in imported_modules(p)}
    # THEN it does launch deployables (so the rule above is not vacuous)
    assert {"producer", "ingest_api", "ml", "dashboard"} <= wired


def deployable_modules() -> list[tuple[str, Path]]:
    return sorted((d, p) for d in DEPLOYABLES for p in (ROOT / d).rglob("*.py"))


@pytest.mark.parametrize(
    ("deployable", "path"), deployable_modules(), ids=lambda v: str(v).replace(str(ROOT), "")
)
def test_a_deployable_imports_core_and_itself_only(deployable: str, path: Path) -> None:
    # GIVEN a deployable's module WHEN its imports are read
    others = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for line, module in imported_modules(path)
        if module.split(".")[0] in DEPLOYABLES and module.split(".")[0] != deployable
    ]
    # THEN no other deployable is among them: each ships (image, zip) with core and itself only
    assert not others, "\n".join(others)
