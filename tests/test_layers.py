"""The layers of DESIGN.md, checked on the source: who imports whom inside tuspipe.

The imports are read from each module's syntax tree (imports under ``TYPE_CHECKING`` count
too: a cycle of types is still a cycle for a reader). No cycle may exist outside
``tuspipe.compat`` (whose layout mirrors tuspy's), httpx is imported by the transport only,
the protocol layer is pure, and the stages know nothing of the transport or the retry policy.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tuspipe"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The modules `path` imports: tuspipe's by full name, others by their top-level name."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # `from . import x` / `from .pkg import mod` may name modules, not attributes.
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if candidate in GRAPH_NAMES:
                    found.add(candidate)
    return {name for name in found if name != module}


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
GRAPH_NAMES = set(MODULES)
GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _internal(name: str) -> set[str]:
    return {target for target in GRAPH[name] if target in GRAPH_NAMES}


def _cycle_from(start: str, allowed: set[str]) -> list[str] | None:
    """A cycle through `start` among `allowed` modules, or None."""
    stack = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for target in _internal(node) & allowed:
            if target == start:
                return [*path, start]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return None


def test_the_graph_was_read() -> None:
    assert {"tuspipe._client", "tuspipe._upload", "tuspipe._protocol"} <= GRAPH_NAMES
    assert "tuspipe._upload" in _internal("tuspipe._client")


@pytest.mark.parametrize(
    "module", sorted(name for name in MODULES if not name.startswith("tuspipe.compat"))
)
def test_no_import_cycle_outside_compat(module: str) -> None:
    outside = {name for name in GRAPH_NAMES if not name.startswith("tuspipe.compat")}
    assert _cycle_from(module, outside) is None


# Above the library: they use its public API (``import tuspipe``).
_SHELLS = ("tuspipe.compat", "tuspipe.cli", "tuspipe._cli", "tuspipe.__main__")


@pytest.mark.parametrize(
    "module", sorted(name for name in MODULES if name != "tuspipe" and not name.startswith(_SHELLS))
)
def test_the_library_never_imports_its_own_front(module: str) -> None:
    assert "tuspipe" not in _internal(module)


# The transport layer: the transport, its zero-copy request path, the connection pool under
# it, and its auth step (_auth drives httpx.Auth flows for the requests that bypass httpx's
# client layers).
_TRANSPORT_LAYER = {"tuspipe._transport", "tuspipe._zerocopy", "tuspipe._pool", "tuspipe._auth"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_the_transport_imports_httpx(module: str) -> None:
    if module in _TRANSPORT_LAYER:
        return
    assert not {"httpx", "httpcore"} & GRAPH[module], module


def test_the_protocol_layer_is_pure() -> None:
    allowed = {"tuspipe._errors", "tuspipe._httpdate", "tuspipe._status"}
    third_party_or_io = {"trio", "httpx", "httpcore", "msgpack", "socket", "ssl", "os"}
    for module in ("tuspipe._protocol", "tuspipe._status", "tuspipe._httpdate"):
        assert _internal(module) <= allowed, module
        assert not GRAPH[module] & third_party_or_io, module


def test_the_stages_know_neither_transport_nor_retry_policy() -> None:
    assert not {"tuspipe._transport", "tuspipe._retry", "httpx"} & GRAPH["tuspipe._stages"]


def test_the_journal_imports_no_upload_machinery() -> None:
    assert _internal("tuspipe._journal") <= {"tuspipe._httpdate"}
