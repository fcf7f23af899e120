"""Op properties live on the OpDef (issue 15): the passes ask the op, not a list of names."""
from __future__ import annotations

import ast
from pathlib import Path

import nndsl.passes  # noqa: F401  (registers the internal ops passes create)
from nndsl.ops import OPS

ROOT = Path(nndsl.passes.__file__).parent.parent

# Lists of names outside ops/ that are not op properties: keywords, another format's table, the
# ops one rule rewrites. Each entry must still hold a list (else it is stale and should go).
ALLOWED = {
    "onnx/table.py": "the ONNX table maps ops by name",
    "tools/lexer.py": "keywords, which are also op names",
    "torch_weights.py": "layers without PyTorch weights",
}


def _name_lists(path: Path) -> list:
    """(line, names) of every set, tuple or list literal holding 3+ registered op names."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Set, ast.Tuple, ast.List)):
            names = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in OPS]
            if len(names) >= 3:
                found.append((node.lineno, names))
    return found


def test_no_module_outside_the_ops_keeps_a_list_of_op_names():
    hits = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("ops/") or rel == "passes/ops.py":
            continue
        lists = _name_lists(path)
        if lists and rel not in ALLOWED:
            hits[rel] = lists
        if rel in ALLOWED:
            assert lists, f"{rel} no longer keeps a list of op names: drop it from ALLOWED"
    assert not hits, f"ask the OpDef (a trait) instead of listing op names: {hits}"


def test_the_interpreter_names_no_op():
    tree = ast.parse((ROOT / "lower" / "interpret.py").read_text())
    named = sorted({n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in OPS})
    assert not named, f"lower/interpret.py branches on ops by name: {named}"


def test_random_ops_are_never_merged_shared_or_hoisted():
    for op in OPS.values():
        if op.random or op.needs_rng:
            assert not op.pure and not op.shareable, op.name
        if op.random:
            assert not op.mergeable, op.name


def test_loops_lower_themselves_and_name_their_bodies():
    loops = {op.name for op in OPS.values() if op.body_attrs}
    assert {"scan", "scan_layers", "generate"} <= loops
    for name in loops:
        op = OPS[name]
        assert op.lowers_itself and not op.pure and not op.mergeable and not op.shareable, name
    assert OPS["grad"].lowers_itself and not OPS["grad"].pure  # it reads the graph it sits in
    assert not any(op.lowers_itself for op in OPS.values() if op.pure)


def test_elementwise_ops_keep_their_shape():
    from nndsl.ir.types import TensorType
    t = TensorType((2, 3), "float32")
    for op in OPS.values():
        if op.elementwise == "unary":
            assert op.inputs == ("x",), op.name
            assert op.infer(t, **{a.name: a.default for a in op.attrs}).shape == t.shape, op.name
        elif op.elementwise == "binary":
            assert op.inputs == ("a", "b") and op.infer(t, t).shape == t.shape, op.name
        else:
            assert op.elementwise is None, op.name
