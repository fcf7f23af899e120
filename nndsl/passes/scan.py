"""Moving work out of scan bodies.

A scan node's inputs are laid out `[seq, *initial states, *extra sequences, *constants]`, and its
body's inputs likewise `[x, *states, *extra steps, *constants]`; `n_seqs` and `n_consts` in its
attributes count the last two groups (both absent on a scan as built).

- hoist-scan-invariants: values a body computes from parameters alone (concatenated kernels,
  a folded batchnorm scale) are computed once, before the scan, and enter it as constants.
- hoist-scan-inputs: work that depends on the step input but not on the state (the input half of
  every gate's matmul, `x_t @ W_x + b`) runs before the scan as one matmul over all time steps and
  enters it as an extra sequence. A matmul on `[h, x]` is first split into `h @ W_h + x @ W_x`.
  Whether this pays depends on the platform (on XLA:CPU it measured slower), so it is not in -O2.
- split-concat-matmul: only the first half of that, inside the loop: `[h, x] @ W` becomes
  `x @ W_x + h @ W_h`, so no step concatenates h and x (nor slices the gradient apart again).
  With the gates fused and the kernel halves hoisted as invariants, the LSTM training step on
  XLA:CPU ran 1.3-1.45x faster.
"""
from __future__ import annotations

from ..ir.graph import Graph, Node
from ..ops import OPS
from .rewrite import Context, Pass, add, erase_dead, param


def scan_groups(s: Node) -> tuple[int, int, int]:
    """(number of states, of extra sequences, of constants) of a scan node."""
    return len(s.attrs["states"]), s.attrs.get("n_seqs", 0), s.attrs.get("n_consts", 0)


def add_scan_input(g: Graph, s: Node, outer: str, step: Node, kind: str) -> None:
    """Adds `outer` as a new extra sequence or constant of scan `s`, seen in its body as `step`."""
    body: Graph = s.attrs["body"]
    n_st, n_seqs, _ = scan_groups(s)
    at = 1 + n_st + n_seqs if kind == "seq" else len(body.inputs)
    ins = g.input_ids(s.id)
    ins.insert(at, outer)
    g.set_inputs(s.id, ins)
    body.inputs.insert(at, step.id)
    key = "n_seqs" if kind == "seq" else "n_consts"
    s.attrs = {**s.attrs, key: s.attrs.get(key, 0) + 1}


def _variant(body: Graph, sources) -> set[str]:
    out = set(sources)
    for i in sources:
        out |= body.descendants(i)
    return out


def copy_into(src: Graph, nid: str, dst: Graph, memo: dict) -> str:
    """Copies `nid` and everything it reads from `src` into `dst` (they read no body input)."""
    if nid in memo:
        return memo[nid]
    n = src.node(nid)
    ins = [copy_into(src, i, dst, memo) for i in src.input_ids(nid)]
    memo[nid] = dst.add(n.op, ins, dict(n.attrs), n.type, n.span, n.path, n.label).id
    return memo[nid]


def _pure(body: Graph, nid: str) -> bool:
    """No randomness, nested loops or gradients at or above `nid` (`OpDef.pure`): safe to compute once."""
    for a in body.ancestors([nid]):
        n = body.node(a)
        opdef = OPS.get(n.op)
        if n.op == "input":
            continue
        if opdef is None or not opdef.pure:
            return False
    return True


def _not_worth_it(n: Node) -> bool:
    """A constant or a parameter or state leaf (a pure op without inputs): reading it costs
    nothing in the loop."""
    opdef = OPS.get(n.op)
    return opdef is not None and not opdef.inputs and opdef.pure


class HoistScanInvariants(Pass):
    """Values a scan body computes without reading its step input or its state move before the
    scan and enter it as constants."""

    name = "hoist-scan-invariants"

    def run_on(self, g: Graph, ctx: Context) -> int:
        moved = 0
        for s in [n for n in g.nodes() if n.op == "scan"]:
            body: Graph = s.attrs["body"]
            variant = _variant(body, body.inputs)
            memo: dict = {}
            for nid in body.topo_order():
                n = body.node(nid)
                if nid in variant or _not_worth_it(n) or not _pure(body, nid):
                    continue
                if not any(u in variant for u in body.users(nid)):
                    continue  # only an invariant reads it: hoisted with that one
                step = body.add("input", [], {"name": f"const_{len(body.inputs)}"}, n.type, n.span)
                add_scan_input(g, s, copy_into(body, nid, g, memo), step, "const")
                body.replace_all_uses(nid, step.id)
                erase_dead(body, nid)
                moved += 1
        return moved


# ---------------------------------------------------------------------- hoist-scan-inputs
def _invariant(body: Graph, nid: str, variant: set) -> bool:
    return nid not in variant and _pure(body, nid)


def _mixed_concat(body: Graph, cat: str, local: set) -> list | None:
    """The parts of a feature-axis concat of step-local and state-dependent values, else None."""
    c = body.node(cat)
    if c.op != "concat" or c.type.rank != 2 or c.attrs["axis"] not in (-1, 1):
        return None
    parts = body.input_ids(cat)
    if not any(p in local for p in parts) or all(p in local for p in parts):
        return None
    return parts


def decompose_dense_on_concat(body: Graph, n: Node, local: set, variant: set) -> str | None:
    """dense([h, x]) -> [h, x] @ kernel + bias, so that the matmul can be split."""
    if n.op != "dense" or n.path is None or n.attrs.get("shard"):
        return None
    if _mixed_concat(body, body.input_ids(n.id)[0], local) is None:
        return None
    y = add(body, "matmul", [body.input_ids(n.id)[0], param(body, n.path + ("kernel",), n).id], {}, n).id
    return add(body, "add", [y, param(body, n.path + ("bias",), n).id], {}, n).id if n.attrs["bias"] else y


def split_concat_matmul(body: Graph, n: Node, local: set, variant: set) -> str | None:
    """matmul([h, x], W) -> x @ W[|h|:] + h @ W[:|h|]: the step-local terms are summed first, so
    their sum can leave the loop."""
    if n.op != "matmul":
        return None
    cat, w = body.input_ids(n.id)
    parts = _mixed_concat(body, cat, local)
    if parts is None or not _invariant(body, w, variant) or body.node(w).type.rank != 2:
        return None
    sizes = tuple(body.node(p).type.shape[-1] for p in parts)
    if not all(isinstance(d, int) for d in sizes):
        return None
    ws = add(body, "split", [w], {"sections": sizes, "axis": 0}, n)
    terms = {}
    for i, p in enumerate(parts):
        wi = body.add("get_item", [ws.id], {"index": i}, ws.type[i], n.span)
        terms[p] = add(body, "matmul", [p, wi.id], {}, n).id
    order = [p for p in parts if p in local] + [p for p in parts if p not in local]
    total = terms[order[0]]
    for p in order[1:]:
        total = add(body, "add", [total, terms[p]], {}, n).id
    return total


def gather_step_terms(body: Graph, n: Node, local: set, variant: set) -> str | None:
    """(a + h) + b -> (a + b) + h for step-local a, state-dependent h and a constant vector b
    (the bias joins the input half of the matmul)."""
    if n.op != "add":
        return None
    p, b = body.input_ids(n.id)
    inner = body.node(p)
    if inner.op != "add" or body.uses(p) != 1 or not _invariant(body, b, variant):
        return None
    a, h = body.input_ids(p)
    if a not in local or h in local or body.node(b).type.rank > 1 or body.node(a).type != n.type:
        return None
    return add(body, "add", [add(body, "add", [a, b], {}, n).id, h], {}, n).id


def _distributable(body: Graph, n: Node, local: set, variant: set) -> bool:
    """Whether `n` computes the same per time step when given [batch, time, ...] inputs."""
    ins = body.input_ids(n.id)
    if not ins or not any(i in local for i in ins) or not _pure(body, n.id):
        return False
    others = [i for i in ins if i not in local]
    if any(i in variant for i in others):
        return False  # reads the state
    elementwise = OPS[n.op].elementwise if n.op in OPS else None
    if elementwise == "unary" or n.op == "dense":
        return True
    if n.op == "concat":
        return not others and n.attrs["axis"] in (-1, n.type.rank - 1)
    if n.op == "matmul":
        return ins[0] in local and ins[1] not in local and body.node(ins[1]).type.rank == 2
    if elementwise == "binary":
        return all(body.node(i).type.rank <= 1 for i in others) and all(
            body.node(i).type == n.type for i in ins if i in local)
    return False


def step_locals(body: Graph, s: Node) -> tuple[set, set]:
    """(values computed from the step inputs alone, values that depend on a step input or state)."""
    n_st, n_seqs, _ = scan_groups(s)
    steps = [body.inputs[0]] + body.inputs[1 + n_st:1 + n_st + n_seqs]
    variant = _variant(body, body.inputs[:1 + n_st + n_seqs])
    local = set(steps)
    for nid in body.topo_order():
        if nid not in local and _distributable(body, body.node(nid), local, variant):
            local.add(nid)
    return local, variant


def rewrite_body(body: Graph, s: Node, fn) -> None:
    """Applies `fn(body, node, local, variant)` to every node of scan `s`'s body, in order."""
    local, variant = step_locals(body, s)
    for nid in body.topo_order():
        if nid not in body:
            continue
        new = fn(body, body.node(nid), local, variant)
        if new is not None:
            body.replace_all_uses(nid, new)
            erase_dead(body, nid)
            local, _ = step_locals(body, s)


class HoistScanInputs(Pass):
    """The part of a scan body that reads only the step input runs before the scan, over the
    whole sequence at once (one big matmul), and enters the scan as an extra sequence."""

    name = "hoist-scan-inputs"

    def run_on(self, g: Graph, ctx: Context) -> int:
        moved = 0
        for s in [n for n in g.nodes() if n.op == "scan"]:
            if s.attrs["unroll"] is None:
                moved += self._hoist(g, s)
        return moved

    def _hoist(self, g: Graph, s: Node) -> int:
        body: Graph = s.attrs["body"]
        for fn in (decompose_dense_on_concat, split_concat_matmul, gather_step_terms):
            rewrite_body(body, s, fn)
        local, _ = step_locals(body, s)
        n_st, n_seqs, _ = scan_groups(s)
        outer = g.input_ids(s.id)
        steps = [body.inputs[0]] + body.inputs[1 + n_st:1 + n_st + n_seqs]
        # constants (hoist-scan-invariants' work) are the scan's own operands outside: an
        # input node copied out would be an input the outer graph does not have
        consts, outer_consts = body.inputs[1 + n_st + n_seqs:], outer[1 + n_st + n_seqs:]
        memo = dict(zip(steps + consts, [outer[0]] + outer[1 + n_st:1 + n_st + n_seqs] + outer_consts, strict=True))
        moved = 0
        for nid in body.topo_order():
            if nid not in local or nid in steps or nid not in body:
                continue
            if all(u in local for u in body.users(nid)) and nid not in body.outputs.values():
                continue  # only step-local work reads it: it leaves with its readers
            outer = self._outer(body, nid, g, memo, local, s)
            if outer is None:
                continue
            n = body.node(nid)
            step = body.add("input", [], {"name": f"seq_{len(body.inputs)}"}, n.type, n.span)
            add_scan_input(g, s, outer, step, "seq")
            body.replace_all_uses(nid, step.id)
            erase_dead(body, nid)
            moved += 1
        return moved

    def _outer(self, body: Graph, nid: str, g: Graph, memo: dict, local: set, s: Node) -> str | None:
        """`nid` computed outside over [batch, time, ...]; None when its type would not match."""
        if nid in memo:
            return memo[nid]
        n = body.node(nid)
        ins = []
        for i in body.input_ids(nid):
            ins.append(self._outer(body, i, g, memo, local, s) if i in local else copy_into(body, i, g, memo))
            if ins[-1] is None:
                return None
        time = g.node(g.input_ids(s.id)[0]).type.shape[1]
        want = n.type.with_shape(n.type.shape[:1] + (time,) + n.type.shape[1:])
        attrs = dict(n.attrs)
        if n.op == "concat":
            attrs["axis"] = -1
        try:
            t = OPS[n.op].infer(*[g.node(i).type for i in ins], **attrs)
        except Exception:  # noqa: BLE001  (not distributable after all)
            return None
        if t != want:
            return None
        memo[nid] = g.add(n.op, ins, attrs, t, n.span, n.path, n.label).id
        return memo[nid]


class SplitConcatMatmul(Pass):
    """Inside scan bodies, a matmul (or dense layer) on the concatenation of the step input and
    the state becomes a sum of one matmul per part, the kernel split by rows."""

    name = "split-concat-matmul"

    def run_on(self, g: Graph, ctx: Context) -> int:
        changed = 0
        for s in [n for n in g.nodes() if n.op == "scan"]:
            body: Graph = s.attrs["body"]
            before = len(body)
            for fn in (decompose_dense_on_concat, split_concat_matmul):
                rewrite_body(body, s, fn)
            changed += len(body) != before
        return changed
