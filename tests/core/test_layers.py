"""Imports follow the layer order: a module imports only modules of its own layer or lower.

From the bottom: the spec, formats, the helpers below the backends (layout, the
random-bit generator, CUDA sources), the backends, the device module, the MXArray
storage record, core, the block-wise access built on core, the array API namespace,
and on top the user-facing modules (files, CLI, Dask, interop, diagnostics, report, the
package itself).  Every import counts: module level, inside functions, and
``importlib.import_module`` with a constant name.  The imports are read from the
source with :mod:`ast`, so nothing is imported to check them.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

SOURCE = pathlib.Path(__file__).resolve().parents[2] / "src"

LAYERS: list[tuple[str, ...]] = [
    ("mxarray._spec", "mxarray._kernel_codes", "mxarray._block_spec"),
    ("mxarray.formats",),
    ("mxarray.layout", "mxarray._random", "mxarray._cuda_sources"),
    ("mxarray.backends",),
    ("mxarray._device_arrays",),
    ("mxarray.array",),
    ("mxarray.core",),
    ("mxarray.blockwise",),
    ("mxarray._namespace",),
    ("mxarray.io", "mxarray.cli", "mxarray.__main__", "mxarray.dask", "mxarray.interop",
     "mxarray.diagnostics", "mxarray.report", "mxarray.datasets", "mxarray"),
]
"""Each layer lists module names; a name stands for itself and its submodules."""

ALLOWED = {
    # The dense Array's __array_namespace__ returns the public package, which re-exports
    # the namespace: it names the namespace itself, not a layer above it.
    ("mxarray._namespace._array", "mxarray"),
}


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SOURCE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(name: str) -> int:
    """The layer of a module: the most specific prefix listed in LAYERS."""
    best, rank = "", -1
    for i, names in enumerate(LAYERS):
        for prefix in names:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best):
                best, rank = prefix, i
    if rank < 0:
        raise AssertionError(f"{name} is in no layer: add it to LAYERS in tests/core/test_layers.py")
    return rank


def _absolute(package: str, module: str | None, level: int) -> str:
    base = package.split(".")
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports(path: pathlib.Path) -> set[str]:
    """The mxarray modules the file at ``path`` imports."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return imports_in(path.read_text(encoding="utf-8"), package)


def imports_in(source: str, package: str) -> set[str]:
    """The mxarray modules ``source`` (a module of ``package``) imports: ``from X import
    Y`` counts ``X.Y`` when that is a module, else ``X``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(package, node.module, node.level) if node.level else node.module
            for a in node.names:
                sub = SOURCE / pathlib.Path(*f"{target}.{a.name}".split("."))
                found.add(f"{target}.{a.name}" if sub.with_suffix(".py").exists()
                          or sub.is_dir() else target)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant)):
            target = node.args[0].value
            if target.startswith("."):
                level = len(target) - len(target.lstrip("."))
                target = _absolute(package, target.lstrip(".") or None, level)
            found.add(target)
    return {m for m in found if m == "mxarray" or m.startswith("mxarray.")}


SOURCES = sorted((SOURCE / "mxarray").rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: module_name(p))
def test_imports_follow_the_layer_order(path: pathlib.Path) -> None:
    name = module_name(path)
    upward = sorted(m for m in imports(path)
                    if layer(m) > layer(name) and (name, m) not in ALLOWED)
    assert not upward, f"{name} (layer {layer(name)}) imports higher layers: {upward}"


def test_nothing_below_the_namespace_imports_it() -> None:
    namespace = layer("mxarray._namespace")
    offenders = sorted(module_name(p) for p in SOURCES if layer(module_name(p)) < namespace
                       and any(layer(m) >= namespace for m in imports(p)))
    assert not offenders


def test_the_checker_sees_imports_inside_functions() -> None:
    """An import hidden in a function body, or made by importlib, still counts."""
    source = ("def f():\n    from . import _namespace\n    from .core import quantize\n"
              "    import importlib\n    importlib.import_module('.blockwise', __package__)\n")
    assert imports_in(source, "mxarray") == {"mxarray._namespace", "mxarray.core",
                                             "mxarray.blockwise"}
