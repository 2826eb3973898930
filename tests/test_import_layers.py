"""Imports point one way: model -> plan -> backends -> DSE / simulation -> inference
(``hls.infer``: classify / eval over every backend) -> CLI; the board project
(``hls.board``: Vivado scripts around the open RTL) sits on the RTL backend.

Every ``import`` statement in the packages, including those inside functions, is read
with ``ast`` and checked against the layer table below. Test files (``tests/``,
``sim/test_*.py``) sit on top and may import anything.
"""

from __future__ import annotations

import ast

import pytest

from model.paths import REPO

# layer -> the layers it may import (itself included)
ALLOWED: dict[str, set[str]] = {
    "model": {"model"},
    "hls.plan": {"model", "hls.plan"},
    "hls.hls4ml_backend": {"model", "hls.plan", "hls.hls4ml_backend"},
    "hls.rtl": {"model", "hls.plan", "hls.rtl"},
    "hls.dse": {"model", "hls.plan", "hls.dse"},
    "sim": {"model", "hls.plan", "hls.rtl", "sim"},
    "hls.infer": {"model", "hls.plan", "hls.hls4ml_backend", "hls.rtl", "sim", "hls.infer"},
    "hls.board": {"model", "hls.plan", "hls.rtl", "hls.board"},
    "hls.cli": {"model", "hls.plan", "hls.hls4ml_backend", "hls.rtl", "hls.dse", "sim",
                "hls.infer", "hls.board", "hls.cli"},
}
# third-party packages a layer must not need (the plan is backend-neutral)
FORBIDDEN_THIRD_PARTY = {"model": {"hls4ml", "cocotb", "jinja2"},
                         "hls.plan": {"hls4ml", "cocotb", "jinja2", "tensorflow", "qkeras"}}
OWN = ("model", "hls", "sim", "firmware", "configs")


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name of this project (None for firmware/configs data)."""
    if module in ("hls.dse", "hls.dse_report"):
        return "hls.dse"
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def imports_of(tree: ast.AST, module: str) -> list[tuple[int, str]]:
    """(line, imported module) of every import statement, relative ones resolved."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[:-node.level]
                base = ".".join(parts + ([base] if base else []))
            # `from hls import dse` imports the module hls.dse
            out += [(node.lineno, f"{base}.{a.name}" if base in OWN or base == "hls.rtl"
                     else base) for a in node.names]
    return out


def violations(source: str, module: str) -> list[str]:
    layer = layer_of(module)
    if layer is None:
        return []
    bad = []
    for line, target in imports_of(ast.parse(source), module):
        root = target.split(".")[0]
        if root in FORBIDDEN_THIRD_PARTY.get(layer, set()):
            bad.append(f"{module}:{line} imports {target} ({layer} is backend-neutral)")
        if root not in OWN:
            continue
        to = layer_of(target)
        if to is None and target.split(".")[0] in ("firmware", "configs"):
            continue
        if to is None:
            to = target  # e.g. `import hls` alone: treat as the package itself
        if to not in ALLOWED[layer]:
            bad.append(f"{module}:{line} imports {target} ({layer} -> {to} points up)")
    return bad


def _package_modules():
    for top in ("model", "hls", "sim"):
        for path in sorted((REPO / top).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            if path.name.startswith("test_") or path.name == "conftest.py":
                continue
            yield path, ".".join(rel.parts).removesuffix(".__init__")


def test_imports_point_down():
    checked, bad = 0, []
    for path, module in _package_modules():
        bad += violations(path.read_text(), module)
        checked += 1
    print(f"{checked} modules checked")
    assert checked > 30
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module, source, expect", [
    ("model.graph", "from hls.plan.folding import LayerFolding\n", "model -> hls.plan"),
    ("model.golden", "def f():\n    import sim.network\n", "model -> sim"),
    ("hls.plan.memory", "from hls.rtl.passes import Stream\n", "hls.plan -> hls.rtl"),
    ("hls.rtl.generate", "from hls.hls4ml_backend import convert\n",
     "hls.rtl -> hls.hls4ml_backend"),
    ("hls.plan.perf", "import hls4ml\n", "backend-neutral"),
    ("hls.dse", "from hls.cli import main\n", "hls.dse -> hls.cli"),
    ("sim.rtl_frames", "from hls.infer.classify import Classifier\n", "sim -> hls.infer"),
    ("hls.infer.classify", "from hls.cli import main\n", "hls.infer -> hls.cli"),
    ("hls.board.bitstream", "from sim.network import prepare_network\n", "hls.board -> sim"),
    ("hls.board.bitstream", "from hls.hls4ml_backend.csim import project_dir\n",
     "hls.board -> hls.hls4ml_backend"),
])
def test_a_violation_is_reported(module, source, expect):
    found = violations(source, module)
    assert found and expect in found[0]


def test_allowed_imports_pass():
    assert violations("from model.graph import Node\nfrom hls.plan import streams\n",
                      "hls.rtl.passes") == []
