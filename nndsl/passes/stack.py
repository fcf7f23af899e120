"""Scan over layers: `Block * n` with identical copies runs as one `lax.scan` over stacked
parameters, so XLA compiles one copy instead of n and compile time stays flat as depth grows.

The graph keeps no trace of `* n`, so copies are found by structure. A *cut* is a value that every
later computation reaches only through it (a chain's links, a residual block's output); the nodes
between two cuts form a segment. Each segment gets a signature (ops, attributes, types, how its
nodes connect, and the shapes of the parameters they read), and a run of at least MIN_COPIES
consecutive units (of one or a few segments) with equal signatures becomes one `scan_layers` node.
Its body is the first copy; its `paths` attribute lists, for every copy, the parameter scopes its
layers read, so every parameter keeps its own name (`dense_3/kernel`) and is stacked only inside
the step function. Copies that draw random numbers, nest loops, or update state (batchnorm while
training) are left alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

from ..ir.graph import Graph, Node
from ..ops import OPS
from .cleanup import freeze
from .rewrite import Context, Pass, erase_dead

MAX_PERIOD = 12  # segments in one repeated unit
# A run is stacked when it has at least `min_copies` copies, each with at least `min_unit` layers
# that have parameters. Stacking costs a copy of the weights every step and, on XLA:CPU, more
# compile time for small bodies: `(dense(512) -> relu) * 48` compiled 7x slower and stepped 2-4x
# slower stacked, while ResNet-152's 35 bottlenecks compiled 4.8x faster. Context options
# (`min_copies`, `min_unit`) override these.
MIN_COPIES = 8
MIN_UNIT = 2


@dataclass(frozen=True)
class StackedPaths:
    """For each copy, the parameter scope of each parameterized node of the body, in body order."""

    paths: tuple

    def __str__(self) -> str:
        first, last = self.paths[0], self.paths[-1]
        return "[" + ", ".join(f"{'.'.join(a)}..{'.'.join(b)}" for a, b in zip(first, last)) + "]"


def _scopes(n: Node) -> list[tuple]:
    """The parameter scopes node `n` reads: its own path, and those a fused node names in `reads`."""
    opdef = OPS.get(n.op)
    if n.path is None or opdef is None or not opdef.has_params:
        return []
    return [n.path] + [p for _, p in n.attrs.get("reads", ())]


def _leaf_index(g: Graph) -> dict:
    """scope prefix -> [(rest of the key, shape)] over parameters and state."""
    index: dict = {}
    for reg in (g.params, g.state):
        for key, spec in reg.items():
            for i in range(1, len(key) + 1):
                index.setdefault(key[:i], []).append((key[i:], tuple(spec.shape)))
    return index


def _stackable(g: Graph, n: Node, ctx: Context) -> bool:
    opdef = OPS.get(n.op)
    if opdef is None or not opdef.pure:  # a loop, a gradient, randomness
        return False
    types = [g.node(i).type for i in g.input_ids(n.id)]
    return not (ctx.train and n.path is not None and opdef.has_params and opdef.state(*types, **n.attrs))


class _Segments:
    """The graph cut into segments along its spine (what depends on the inputs)."""

    def __init__(self, g: Graph):
        self.g = g
        order = g.topo_order()
        self.pos = {n: i for i, n in enumerate(order)}
        spine = set(g.inputs)
        for i in g.inputs:
            spine |= g.descendants(i)
        self.spine = [n for n in order if n in spine]
        sp = {n: i for i, n in enumerate(self.spine)}
        cuts, reach = [], -1
        for i, n in enumerate(self.spine):
            if reach <= i and not isinstance(g.node(n).type, tuple):
                cuts.append(i)
            if n not in g.inputs:  # an input read far ahead (labels, a skip from the image) is a constant
                reach = max([reach] + [sp[u] for u in g.users(n) if u in sp])
        # segment k: spine nodes after cut k-1 up to and including cut k; its entry is cut k-1
        self.entries = [self.spine[c] for c in cuts[:-1]]
        self.members: list[list[str]] = [self.spine[a + 1:b + 1] for a, b in pairwise(cuts)]
        self.owner = {n: k for k, seg in enumerate(self.members) for n in seg}
        self._own_free(order, spine)

    def _own_free(self, order, spine) -> None:
        """A node outside the spine (a parameter read, a folded kernel) belongs to the segment
        that alone reads it; one read by several segments is a constant they share."""
        for n in reversed(order):
            if n in spine:
                continue
            owners = {self.owner.get(u) for u in self.g.users(n)}
            if len(owners) == 1 and None not in owners and n not in self.g.outputs.values():
                k = owners.pop()
                self.owner[n] = k
                self.members[k].append(n)
        for seg in self.members:
            seg.sort(key=self.pos.get)


def _signature(g: Graph, seg: list, entry: str, ctx: Context, leaves: dict):
    """What must be equal for two segments to be copies of each other; None if never stackable."""
    idx = {n: i for i, n in enumerate(seg)}
    outputs = set(g.outputs.values())
    sig = []
    for n in seg:
        node = g.node(n)
        if not _stackable(g, node, ctx) or (n in outputs and n != seg[-1]):
            return None
        ins = tuple(("e",) if i == entry else ("l", idx[i]) if i in idx else ("c", i) for i in g.input_ids(n))
        try:
            attrs = freeze({k: v for k, v in node.attrs.items() if k != "reads"})  # scopes differ per copy
        except TypeError:
            return None
        shapes = tuple(tuple(sorted(leaves.get(p, ()))) for p in _scopes(node))
        sig.append((node.op, attrs, node.type, ins, shapes))
    return tuple(sig)


def _runs(sigs: list, min_copies: int) -> list[tuple[int, int, int]]:
    """(start, period, copies) of the longest repeats of equal signatures, left to right."""
    out, i = [], 0
    while i < len(sigs):
        best = None
        for p in range(1, MAX_PERIOD + 1):
            unit = sigs[i:i + p]
            if len(unit) < p or any(s is None for s in unit):
                break
            k = 1
            while sigs[i + k * p:i + (k + 1) * p] == unit:
                k += 1
            if k >= min_copies and (best is None or k * p > best[1] * best[2]):
                best = (i, p, k)
        if best:
            out.append(best)
            i += best[1] * best[2]
        else:
            i += 1
    return out


class ScanLayers(Pass):
    """Runs of identical layers (`Block * n`) become one scan over their stacked parameters."""

    name = "scan-layers"

    def run_on(self, g: Graph, ctx: Context) -> int:
        if not g.inputs:
            return 0
        segs = _Segments(g)
        leaves = _leaf_index(g)
        sigs = [_signature(g, m, e, ctx, leaves) for m, e in zip(segs.members, segs.entries)]
        done = 0
        min_copies = ctx.options.get("min_copies", MIN_COPIES)
        min_unit = ctx.options.get("min_unit", MIN_UNIT)
        for start, p, k in reversed(_runs(sigs, min_copies)):  # right to left: earlier runs' ids stay valid
            units = [segs.members[start + t * p:start + (t + 1) * p] for t in range(k)]
            entry = segs.entries[start]
            if g.node(entry).type != g.node(units[0][-1][-1]).type:
                units, entry = units[1:], units[0][-1][-1]  # the first copy changes the carry's shape
            layers = sum(bool(_scopes(g.node(n))) for seg in units[0] for n in seg)
            if len(units) < min_copies or layers < min_unit:
                continue
            flat = [[n for seg in u for n in seg] for u in units]
            if self._wired(g, entry, flat):
                self._stack(g, entry, flat)
                done += 1
        return done

    def _wired(self, g: Graph, entry: str, units: list[list[str]]) -> bool:
        """Each copy reads only its entry, itself, or values from outside the run that do not depend
        on it; nothing outside reads into the run except its last value."""
        run = {n for u in units for n in u}
        after = g.descendants(entry)
        entries = [entry] + [u[-1] for u in units[:-1]]
        outputs = set(g.outputs.values())
        for t, (e, u) in enumerate(zip(entries, units)):
            mine = set(u)
            for n in u:
                if any(i != e and i not in mine and (i in run or i in after) for i in g.input_ids(n)):
                    return False
                if n == u[-1] and t == len(units) - 1:
                    continue
                readers = run if n == u[-1] else mine
                if n in outputs or any(x not in readers for x in g.users(n)):
                    return False
        return True

    def _stack(self, g: Graph, entry: str, units: list[list[str]]) -> None:
        first = units[0]
        exit_ = units[-1][-1]
        body = Graph(params=g.params, state=g.state, counter=g.counter)
        carry = body.add("input", [], {"name": "carry"}, g.node(entry).type, g.node(entry).span)
        body.inputs.append(carry.id)
        mine, consts = set(first), []
        memo = {entry: carry.id}
        for n in first:
            node = g.node(n)
            ins = []
            for i in g.input_ids(n):
                if i not in memo and i not in mine:
                    c = body.add("input", [], {"name": f"const_{len(consts)}"}, g.node(i).type, g.node(i).span)
                    body.inputs.append(c.id)
                    consts.append(i)
                    memo[i] = c.id
                ins.append(memo[i])
            memo[n] = body.add(node.op, ins, dict(node.attrs), node.type, node.span, node.path, node.label).id
        body.outputs = {"out": memo[first[-1]]}
        paths = StackedPaths(tuple(tuple(p for n in u for p in _scopes(g.node(n))) for u in units))
        head = g.node(first[0])
        new = g.add("scan_layers", [entry, *consts], {"body": body, "copies": len(units), "paths": paths},
                    g.node(exit_).type, head.span, None, head.label)
        g.replace_all_uses(exit_, new.id)
        erase_dead(g, exit_)

