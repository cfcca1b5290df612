"""What a Lambda function imports: the repository's own modules it needs, and the third-party
distributions those modules import at load time.

Read from the source with ``ast``, not by importing it, so the answer does not depend on what this
process happens to have loaded. Only imports executed when a module loads count (module level,
including inside top-level ``try``/``if`` blocks, but not under ``if TYPE_CHECKING``): an import
inside a function, such as ``tradestream.aws``'s lazy aiobotocore, is never run by the function.
"""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Top-level packages of this repository; everything else is stdlib or third-party.
FIRST_PARTY = frozenset({"tradestream", "lambdas", "producer", "ingest_api", "ml"})


class ClosureError(RuntimeError):
    """A module the function imports cannot be found or attributed to a distribution."""

    code = "UnresolvedImport"


@dataclass(frozen=True)
class Closure:
    files: tuple[Path, ...]  # repository files, relative to the root, sorted
    third_party: frozenset[str]  # top-level module names, e.g. "pydantic"


def closure(root: Path, package: str) -> Closure:
    """Every repository module ``package`` (e.g. ``lambdas.hotstore``) needs, transitively.

    The whole package is included (a handler's helpers are all its own), then each first-party
    module its files import, with the ``__init__.py`` of every package on the way.
    """
    package_dir = root / package.replace(".", "/")
    if not (package_dir / "__init__.py").is_file():
        raise ClosureError(f"{package} is not a package under {root}")
    pending = sorted(package_dir.rglob("*.py"))
    seen: set[Path] = set()
    third_party: set[str] = set()
    while pending:
        path = pending.pop()
        if path in seen or "__pycache__" in path.parts:
            continue
        seen.add(path)
        module = _module_name(root, path)
        for imported in _load_time_imports(path, module):
            top = imported.partition(".")[0]
            if top in FIRST_PARTY:
                pending.extend(_files_of(root, imported))
            elif top not in sys.stdlib_module_names:
                third_party.add(top)
    files = tuple(sorted(p.relative_to(root) for p in seen))
    return Closure(files=files, third_party=frozenset(third_party))


def distributions(modules: Iterable[str]) -> dict[str, str]:
    """Installed distribution name -> version for top-level modules (``pydantic_settings`` ->
    ``pydantic-settings``), so the zip carries the versions this environment tests with."""
    owners = importlib.metadata.packages_distributions()
    found: dict[str, str] = {}
    for module in sorted(modules):
        names = owners.get(module)
        if not names:
            raise ClosureError(f"no installed distribution provides module {module!r}")
        for name in names:
            found[name] = importlib.metadata.version(name)
    return found


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _files_of(root: Path, module: str) -> Iterator[Path]:
    """The file of ``module`` and the ``__init__.py`` of each enclosing package."""
    parts = module.split(".")
    for depth in range(1, len(parts) + 1):
        base = root.joinpath(*parts[:depth])
        if (base / "__init__.py").is_file():
            yield base / "__init__.py"
        elif base.with_suffix(".py").is_file():
            yield base.with_suffix(".py")
            return
        else:
            raise ClosureError(f"cannot find module {'.'.join(parts[:depth])} under {root}")


def _load_time_imports(path: Path, module: str) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _load_time_statements(tree.body):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            yield base
            # `from package import name` may name a submodule rather than an attribute.
            for alias in node.names:
                yield from _submodule(path, base, alias.name)


def _submodule(path: Path, base: str, name: str) -> Iterator[str]:
    if name == "*" or base.partition(".")[0] not in FIRST_PARTY:
        return
    candidate = f"{base}.{name}"
    if _is_module(path, candidate):
        yield candidate


def _is_module(path: Path, candidate: str) -> bool:
    # The repository root is the first directory above the importing file that is no package.
    root = path.parent
    while (root / "__init__.py").is_file():
        root = root.parent
    target = root.joinpath(*candidate.split("."))
    return target.with_suffix(".py").is_file() or (target / "__init__.py").is_file()


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if node.level == 0:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _load_time_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for node in body:
        if isinstance(node, ast.If):
            if _is_type_checking(node.test):
                yield from _load_time_statements(node.orelse)
            else:
                yield from _load_time_statements(node.body)
                yield from _load_time_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _load_time_statements(block)
            for handler in node.handlers:
                yield from _load_time_statements(handler.body)
        else:
            yield node


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )
