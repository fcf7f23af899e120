"""`nndsl graph`: dataflow graphs as Graphviz pictures (DOT, SVG, PNG, PDF).

A model's picture has one box per op, with the tensor type on every edge; the layers of a model
used as a layer (`BasicBlock_0`, a bound `enc`) sit in a cluster named after it, and a cell
scanned over time is a cluster holding its one-step body, with dashed edges from each next state
back to the state it replaces. `depth` collapses sub-models deeper than that many levels into
single boxes.

A train block's picture draws each model instance as one box per application (`fake -> D` and
`data.x -> D` are two uses of the same weights, inside the instance's cluster), the data fields,
the random draws, the losses and metrics, and one node per `step`: an edge from the loss it
minimizes, and a dashed edge to the instances whose parameters it updates.

Writing DOT needs only the `graphviz` Python package; SVG, PNG and PDF need Graphviz's `dot`.
"""
from __future__ import annotations

import bisect
import copy
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import NndslError
from ..ir.graph import Graph
from ..ir.printer import HIDDEN, _val
from ..ir.types import TensorType

NL = "\\n"  # a line break inside a DOT label
FORMATS = {".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png", ".pdf": "pdf"}
INSTALL_DOT = ("Graphviz's `dot` program is needed to draw {fmt}; install Graphviz "
               "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; conda: "
               "conda install graphviz), or write DOT text with `-o FILE.dot`")

_STYLE = {
    "input": dict(shape="ellipse", style="filled", fillcolor="#dbe9f6"),
    "data": dict(shape="cylinder", style="filled", fillcolor="#dbe9f6"),
    "draw": dict(shape="ellipse", style="filled,dashed", fillcolor="#eeeeee"),
    "op": dict(shape="box", style="rounded,filled", fillcolor="#ffffff"),
    "layer": dict(shape="box", style="rounded,filled", fillcolor="#fdf1d6"),
    "const": dict(shape="plaintext"),
    "model": dict(shape="box3d", style="filled", fillcolor="#e3f1df"),
    "output": dict(shape="invhouse", style="filled", fillcolor="#dbe9f6"),
    "loss": dict(shape="octagon", style="filled", fillcolor="#f8d7d3"),
    "metric": dict(shape="note", style="filled", fillcolor="#eeeeee"),
    "step": dict(shape="box", style="filled,bold", fillcolor="#ffe680"),
    "sample": dict(shape="tab", style="filled", fillcolor="#eeeeee"),
}


def _graphviz():
    try:
        import graphviz
    except ImportError:
        raise NndslError("drawing graphs needs the graphviz Python package: pip install 'nndsl[tools]'",
                         code="E803") from None
    return graphviz


# ---------------------------------------------------------------------- which sub-model a node is in
def _def_spans(defs) -> list:
    out = []
    for name, d in defs.definitions.items():
        if d.span is not None:
            out.append((d.span.source.name, d.span.line, d.span.end_line, name))
    return out


def _def_at(spans: list, span) -> str | None:
    if span is None:
        return None
    for src, lo, hi, name in spans:
        if src == span.source.name and lo <= span.line <= hi:
            return name
    return None


def _common(scopes: list) -> tuple:
    if not scopes:
        return ()
    out = scopes[0]
    for s in scopes[1:]:
        n = 0
        while n < min(len(out), len(s)) and out[n] == s[n]:
            n += 1
        out = out[:n]
    return out


def _is_cell(n) -> bool:
    """A cell stepped over time (`OpDef.cell`): drawn as its body, in the cluster its path names."""
    from ..ops import OPS
    return n.op in OPS and OPS[n.op].cell


def _cell_body(n) -> Graph | None:
    """The one-step body of a cell node (`OpDef.bodies`), if it has one."""
    from ..ops import OPS
    return next(iter(OPS[n.op].bodies(n).values()), None) if _is_cell(n) else None


def scope_kinds(g: Graph, defs) -> dict:
    """scope -> the definition it is an instance of, by where its layers were written (a scan:
    where its body's layers were)."""
    spans = _def_spans(defs)
    votes: dict = defaultdict(lambda: defaultdict(int))
    for n in g.nodes():
        if not n.path or n.path[0].startswith("~"):
            continue
        d = _def_at(spans, n.span)
        if d is not None:
            votes[tuple(n.path[:-1])][d] += 1
        body = _cell_body(n)
        if body is not None:
            for m in body.nodes():
                d = _def_at(spans, m.span)
                if d is not None and m.path:
                    votes[tuple(n.path)][d] += 1
    return {s: max(v, key=v.get) for s, v in votes.items()}


def infer_scopes(g: Graph, defs, root: str) -> dict:
    """node id -> the scope (tuple of instance names) it belongs to.

    A layer's scope is its parameter path without the last name. A node without a path (`a + b`,
    `concat`) was made while the builder elaborated some body, and the builder makes a body's
    nodes one after another: so it belongs to the nearest node made before (or else after) it
    that has a path, or to the enclosing instance of that node whose definition holds the text
    that made it. Failing that, to what its neighbours share."""
    spans = _def_spans(defs)
    scope: dict = {}
    pathed = []  # (order, scope) of nodes with a path, in creation order
    for n in g.nodes():
        if n.op == "input" or (n.path and n.path[0].startswith("~")):
            scope[n.id] = ()
        elif n.path:
            scope[n.id] = tuple(n.path[:-1])
            pathed.append((g.creation_index(n.id), scope[n.id] + ((n.path[-1],) if _is_cell(n) else ())))
    kinds = scope_kinds(g, defs)
    kinds[()] = root
    pathed.sort()
    orders = [o for o, _ in pathed]
    rest = [n for n in g.nodes() if n.id not in scope]
    for n in rest:
        made_by = _def_at(spans, n.span)
        if made_by == root:
            scope[n.id] = ()
            continue
        k = bisect.bisect_left(orders, g.creation_index(n.id))
        near = [pathed[j][1] for j in (k - 1, k) if 0 <= j < len(pathed)]
        found = None
        for s in near:
            for cut in range(len(s), -1, -1):
                if made_by is not None and kinds.get(s[:cut]) == made_by:
                    found = s[:cut]
                    break
            if found is not None:
                break
        if found is not None:
            scope[n.id] = found
    for sweep in (g.topo_order(), list(reversed(g.topo_order()))):
        for nid in sweep:
            if nid not in scope:
                near = [scope[m] for m in g.input_ids(nid) + g.users(nid) if m in scope]
                if near:
                    scope[nid] = _common(near)
    for nid in g.topo_order():
        scope.setdefault(nid, ())
    return scope


def _components(g: Graph, members) -> list[list[str]]:
    """The pieces `members` fall into when joined by the data flowing between them (in either
    direction), each piece and the list of pieces in creation order."""
    inside = set(members)
    key = g.creation_index
    comps, seen = [], set()
    for start in sorted(inside, key=key):
        if start in seen:
            continue
        seen.add(start)
        comp, stack = [], [start]
        while stack:
            nid = stack.pop()
            comp.append(nid)
            for m in g.input_ids(nid) + g.users(nid):
                if m in inside and m not in seen:
                    seen.add(m)
                    stack.append(m)
        comps.append(sorted(comp, key=key))
    return comps


# ---------------------------------------------------------------------- the picture
@dataclass
class _Cluster:
    key: tuple
    label: str
    nodes: list = field(default_factory=list)  # (id, attrs)
    children: dict = field(default_factory=dict)
    style: dict = field(default_factory=dict)


def _short(v) -> str:
    if isinstance(v, (list, tuple)):  # dimensions: [batch, 16], not ["batch", 16]
        text = "[" + ", ".join(str(x) if isinstance(x, str) else _val(x) for x in v) + "]"
    else:
        text = _val(v)
    return text if len(text) <= 24 else text[:21] + "..."


def _op_text(n) -> str:
    from ..ops import OPS
    from ..ops.registry import REQUIRED
    op = OPS.get(n.op)
    attrs = {k: v for k, v in n.attrs.items() if k not in HIDDEN and not k.startswith("_")}
    if n.op == "fill" or (op is not None and op.kind == "random"):
        attrs.pop("shape", None)  # the edge says it
    if op is None:
        inner = ", ".join(f"{k}={_short(v)}" for k, v in sorted(attrs.items()))
    else:
        parts = []
        for a in op.attrs:
            if a.name not in attrs:
                continue
            v = attrs[a.name]
            if a.default is REQUIRED:
                parts.append(_short(v))
            elif v != a.default and v is not None:
                parts.append(f"{a.name}={_short(v)}")
        inner = ", ".join(parts)
    return f"{n.op}({inner})" if inner else n.op


def _type_text(t) -> str:
    if isinstance(t, TensorType):
        return str(t)
    if isinstance(t, tuple):
        return "(" + ", ".join(_type_text(x) for x in t) + ")"
    return "?"


def lines_label(label: str) -> str:
    """A label of several lines as an HTML-like table, one cell per line; one line stays plain.

    Graphviz places the lines of a plain `\\n` label 1.2 font sizes apart, and with the fonts
    fontconfig substitutes for Helvetica (DejaVu Sans on Linux) the underscore of `dense_1` is
    drawn into the top of the line below it. Table cells are laid out from the glyphs' real
    boxes plus padding, so nothing overlaps. The text is escaped for HTML (`&`, `<`, `>`)."""
    if NL not in label:
        return label
    from html import escape
    cells = "".join(f"<TR><TD>{escape(line, quote=False)}</TD></TR>" for line in label.split(NL))
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">{cells}</TABLE>>'


def _dot_id(nid: str) -> str:
    return "n" + nid.lstrip("%")


class Picture:
    """Collects nodes, clusters and edges, then writes a graphviz.Digraph."""

    def __init__(self, title: str, rankdir: str = "TB"):
        self.title, self.rankdir = title, rankdir
        self.root = _Cluster((), title)
        self.edges: dict = {}  # (tail, head, label) -> attrs
        self.ids: set = set()

    def cluster(self, key: tuple, labels: dict) -> _Cluster:
        c = self.root
        for k in range(1, len(key) + 1):
            sub = key[:k]
            if sub not in c.children:
                c.children[sub] = _Cluster(sub, labels.get(sub, sub[-1]))
            c = c.children[sub]
        return c

    def node(self, cluster: _Cluster, nid: str, label: str, kind: str, **extra) -> None:
        if nid in self.ids:
            return
        self.ids.add(nid)
        cluster.nodes.append((nid, {"label": label, **_STYLE[kind], **extra}))

    def edge(self, tail: str, head: str, label: str = "", **attrs) -> None:
        if tail == head:
            return
        self.edges.setdefault((tail, head, label), attrs)

    def digraph(self):
        graphviz = _graphviz()
        dot = graphviz.Digraph(name="nndsl", comment=self.title)
        dot.attr(rankdir=self.rankdir, compound="true", label=self.title, labelloc="t", fontsize="16",
                 fontname="Helvetica")
        dot.attr("node", fontname="Helvetica", fontsize="11")
        dot.attr("edge", fontname="Helvetica", fontsize="9", color="#555555")

        def emit(target, c: _Cluster) -> None:
            for nid, attrs in c.nodes:
                target.node(nid, **{**attrs, "label": lines_label(attrs["label"])})
            for sub in c.children.values():
                with target.subgraph(name=self.cluster_name(sub.key)) as s:
                    s.attr(label=sub.label, style="rounded,filled", fillcolor="#f5f5f5", color="#999999",
                           fontname="Helvetica", fontsize="11", **sub.style)
                    emit(s, sub)

        emit(dot, self.root)
        for (tail, head, label), attrs in self.edges.items():
            dot.edge(tail, head, label=label, **attrs)
        return dot

    def first_node(self, key: tuple) -> str | None:
        c = self.root
        for k in range(1, len(key) + 1):
            c = c.children.get(key[:k])
            if c is None:
                return None
        stack = [c]
        while stack:
            c = stack.pop(0)
            if c.nodes:
                return c.nodes[0][0]
            stack.extend(c.children.values())
        return None

    def cluster_name(self, key: tuple) -> str:
        return "cluster_" + "_".join(key).replace("~", "")


class _Drawer:
    """Draws the nodes and edges of one graph (and its scan bodies) into a Picture."""

    def __init__(self, pic: Picture, g: Graph, defs, root: str, depth: int | None,
                 group_collapsed: bool = False, names: dict | None = None, alias: dict | None = None,
                 scope: dict | None = None):
        self.pic, self.g, self.defs, self.root, self.depth = pic, g, defs, root, depth
        self.scope = scope if scope is not None else infer_scopes(g, defs, root)
        self.group_collapsed = group_collapsed
        self.names = names if names is not None else {}  # scope -> cluster label
        self.alias = alias if alias is not None else {}  # node id -> drawn id (shared with scan bodies)
        self.expanded: dict = {}  # scan node id -> its body's output node ids, in order
        self.kinds = scope_kinds(g, defs)

    def label_of(self, key: tuple) -> str:
        if key in self.names:
            return self.names[key]
        if not key:  # a cell drawn on its own: the scan is the whole picture
            return self.root
        kind = self.kinds.get(key)
        parent = self.kinds.get(key[:-1], self.root)
        if kind is None or kind in (self.root, parent) or key[-1].startswith(kind + "_"):
            return key[-1]
        return f"{key[-1]}: {kind}"

    def _labels(self, key: tuple) -> dict:
        return {key[:i]: self.label_of(key[:i]) for i in range(1, len(key) + 1)}

    def _own_scope(self, n) -> tuple:
        """The scope a node stands for: a scan is the cell instance itself."""
        s = self.scope[n.id]
        return s + (n.path[-1],) if _is_cell(n) and n.path else s

    def draw(self) -> None:
        g = self.g
        groups: dict = defaultdict(list)
        for n in g.nodes():
            s = self._own_scope(n)
            if self.depth is not None and len(s) > self.depth:
                groups[s[:self.depth + 1]].append(n.id)
            elif _is_cell(n):
                self.names.setdefault(s, f"{self.label_of(s)}  (one step, scanned over time)")
        for key, members in groups.items():
            self._collapse(key, members)
        for n in g.nodes():
            if n.id in self.alias:
                continue
            if n.op == "get_item" and g.input_ids(n.id) and _is_cell(g.node(g.input_ids(n.id)[0])):
                src = g.input_ids(n.id)[0]
                outs = self.expanded.get(src)
                self.alias[n.id] = self.drawn(outs[n.attrs["index"]]) if outs else self.drawn(src)
            elif _cell_body(n) is not None:
                self._scan(n)
            else:
                self._node(n)
        for n in g.nodes():
            if n.id in self.expanded:
                continue  # wired to its body by _scan
            if n.op == "get_item" and g.input_ids(n.id) and g.input_ids(n.id)[0] in self.expanded:
                continue
            for src in g.input_ids(n.id):
                self.pic.edge(self.drawn(src), self.drawn(n.id), _type_text(g.node(src).type))

    def drawn(self, nid: str) -> str:
        return self.alias.get(nid, _dot_id(nid))

    def _collapse(self, key: tuple, members: list) -> None:
        comps = _components(self.g, members)
        where = self.pic.cluster(key if self.group_collapsed else key[:-1], self._labels(key))
        kind = self.kinds.get(key)
        label = (kind or key[-1]) if self.group_collapsed else self.label_of(key)
        base = "m_" + "_".join(key).replace("~", "").replace("'", "_")
        for i, comp in enumerate(comps):
            did = base + (f"_{i}" if len(comps) > 1 else "")
            self.pic.node(where, did, label, "model")
            for m in comp:
                self.alias[m] = did

    def _node(self, n) -> None:
        s = self.scope[n.id]
        c = self.pic.cluster(s, self._labels(s))
        did = _dot_id(n.id)
        eq = self.g.names.get(n.id)  # `z = sigmoid(...)` is drawn as `z = sigmoid`
        if eq is not None and n.op not in ("input", "param", "const") and not (n.path and n.path[0].startswith("~")):
            if n.path and any(p[:len(n.path)] == n.path for p in (*self.g.params, *self.g.state)):
                self.pic.node(c, did, f"{eq} = {n.path[-1]}{NL}{_op_text(n)}", "layer")
            else:
                text = n.label.strip("`") if n.label and n.label.startswith("`") else _op_text(n)
                self.pic.node(c, did, f"{eq} = {text}", "layer" if n.path else "op")
        elif n.op == "input":
            name = n.attrs.get("name", n.label or "")
            if str(name).startswith("data."):
                self.pic.node(c, did, f"{name}{NL}{_type_text(n.type)}", "data")
            elif n.attrs.get("carry"):
                self.pic.node(c, did, f"state {name}{NL}{_type_text(n.type)}", "input")
            else:
                self.pic.node(c, did, f"input {name}{NL}{_type_text(n.type)}", "input")
        elif n.path and n.path[0].startswith("~"):
            self.pic.node(c, did, f"{n.path[0][1:]} ~ {_op_text(n)}", "draw")
        elif n.op == "param":
            init = n.attrs.get("init_name")
            self.pic.node(c, did, f"param {n.path[-1] if n.path else ''}{NL}{_type_text(n.type)}"
                          + (f" ~ {init}" if init else ""), "input")
        elif n.op == "const":
            self.pic.node(c, did, _short(n.attrs.get("value")), "const")
        elif n.path and any(p[:len(n.path)] == n.path for p in (*self.g.params, *self.g.state)):
            self.pic.node(c, did, f"{n.path[-1]}{NL}{_op_text(n)}", "layer")  # named: it has weights
        elif n.path:
            self.pic.node(c, did, _op_text(n), "layer")
        elif n.label and n.label.startswith("`"):
            self.pic.node(c, did, n.label.strip("`"), "op")
        else:
            self.pic.node(c, did, _op_text(n), "op")

    def _scan(self, n) -> None:
        """A scanned cell: its body as a cluster, wired to the scan's inputs and outputs, with a
        dashed edge from each next state back to the state it replaces."""
        body = _cell_body(n)
        key = self._own_scope(n)
        scope = {k: v if v[:len(key)] == key else key
                 for k, v in infer_scopes(body, self.defs, self.root).items()}
        inner = _Drawer(self.pic, body, self.defs, self.root, self.depth, self.group_collapsed,
                        self.names, self.alias, scope)
        inner.draw()
        for src, dst in zip(self.g.input_ids(n.id), body.inputs):
            self.pic.edge(self.drawn(src), inner.drawn(dst), _type_text(self.g.node(src).type))
        carries = {body.node(i).attrs.get("name"): i for i in body.inputs if body.node(i).attrs.get("carry")}
        for name, nid in body.outputs.items():
            if name in carries:
                self.pic.edge(inner.drawn(nid), inner.drawn(carries[name]), f"{name}'", style="dashed",
                              constraint="false", color="#3465a4")
        self.expanded[n.id] = list(body.outputs.values())
        self.alias[n.id] = inner.drawn(self.expanded[n.id][0])


# ---------------------------------------------------------------------- entry points
def model_picture(model, depth: int | None = None, after: str | None = None, opt_level: int | None = None,
                  passes: list | None = None, rankdir: str = "TB") -> Picture:
    """The picture of a bound model (`prog.model(name, **args)`), as built or after passes:
    `after` stops the pipeline (`-O` level, default 2, or `passes`) after that pass."""
    g = model.graph()
    title = model.name + (f"({', '.join(f'{k}={_val(v)}' for k, v in model.args.items())})" if model.args else "")
    if after is not None or passes is not None or opt_level is not None:
        g, done = _optimized(g, after, opt_level, passes)
        title += f"  (after {done})" if done else "  (no passes)"
    pic = Picture(title, rankdir)
    drawer = _Drawer(pic, g, model.program.defs, model.name, depth)
    drawer.draw()
    for name, nid in g.outputs.items():
        oid = f"out_{name}".replace("'", "_")
        pic.node(pic.root, oid, f"output {name}", "output")
        pic.edge(drawer.drawn(nid), oid, _type_text(g.node(nid).type))
    return pic


def _optimized(g: Graph, after: str | None, opt_level: int | None, passes: list | None):
    from ..passes import DEFAULT_LEVEL, PASSES, optimize, pipeline
    from ..passes.rewrite import PassError
    names = pipeline(DEFAULT_LEVEL if opt_level is None else opt_level, passes)
    if after is not None:
        if after not in PASSES:
            raise PassError(f"unknown pass `{after}`", code="E902", help=f"passes: {', '.join(PASSES)}")
        if after not in names:
            raise PassError(f"pass `{after}` is not in the pipeline ({', '.join(names) or 'empty'})", code="E902",
                            help="choose the pipeline with -O LEVEL or --passes A,B,C")
        names = names[:names.index(after) + 1]
    g = copy.deepcopy(g)
    if names:
        g = optimize(g, passes=names)
    return g, ", ".join(names)


def _instance_text(spec, inst: str) -> str:
    if inst not in spec.models:
        return f"model {inst}"
    mname, args = spec.models[inst]
    return f"model {inst} = {mname}({', '.join(f'{k}={_val(v)}' for k, v in args.items())})"


def train_picture(prog, name: str | None = None, depth: int | None = 0, rankdir: str = "TB") -> Picture:
    """The picture of a train block: data, instances, losses, metrics, samples and steps."""
    from ..elaborate.train import build_train
    spec = build_train(prog.defs, name, None, prog.defs.base)
    g = spec.graph
    pic = Picture(f"train {spec.name}", rankdir)
    names = {(inst,): _instance_text(spec, inst) for inst in spec.instances}
    drawer = _Drawer(pic, g, prog.defs, spec.name, depth, group_collapsed=True, names=names)
    drawer.draw()
    for what, table in (("loss", spec.losses), ("metric", spec.metrics)):
        for lname, nid in table.items():
            pic.node(pic.root, f"{what}_{lname}", f"{what} {lname}", what)
            pic.edge(drawer.drawn(nid), f"{what}_{lname}", _type_text(g.node(nid).type))
    for i, (nid, every, _) in enumerate(spec.samples):
        pic.node(pic.root, f"sample_{i}", f"sample every {every}", "sample")
        pic.edge(drawer.drawn(nid), f"sample_{i}", _type_text(g.node(nid).type))
    for i, st in enumerate(spec.steps):
        sid = f"step_{i}"
        models = ", ".join(st.models) + (f" \u00d7 {st.repeat}" if st.repeat != 1 else "")
        opt = st.optimizer
        opt_text = getattr(opt, "name", str(opt))
        args = dict(getattr(opt, "args", ()))
        if "lr" in args:
            opt_text += f"(lr={_short(args['lr'])})"
        pic.node(pic.root, sid, f"step {i + 1}: {models}{NL}minimize {st.loss}{NL}with {opt_text}", "step")
        loss_id = f"loss_{st.loss}" if st.loss in spec.losses else drawer.drawn(st.loss_node)
        pic.edge(loss_id, sid, "minimize", style="bold")
        for m in st.models:
            head = pic.first_node((m,))
            if head is None:
                continue
            pic.edge(sid, head, "updates", style="dashed", color="#c4a000", lhead=pic.cluster_name((m,)),
                     constraint="false")
    return pic


def write(pic: Picture, out: str | Path | None) -> str:
    """Writes the picture by the file's suffix (.dot/.gv text; .svg/.png/.pdf through `dot`);
    with no file, returns the DOT text."""
    dot = pic.digraph()
    if out is None or str(out) == "-":
        return dot.source
    out = Path(out)
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise NndslError(f"cannot tell the picture format from `{out.name}`", code="E804",
                         help=f"end the file name in {', '.join(FORMATS)}")
    if not out.resolve().parent.is_dir():
        raise NndslError(f"cannot write {out}: its folder does not exist", code="E609")
    if fmt == "dot":
        out.write_text(dot.source)
        return str(out)
    if not dot_available():
        raise NndslError(INSTALL_DOT.format(fmt=fmt.upper()), code="E805")
    graphviz = _graphviz()
    try:
        out.write_bytes(dot.pipe(format=fmt))
    except graphviz.ExecutableNotFound:
        raise NndslError(INSTALL_DOT.format(fmt=fmt.upper()), code="E805") from None
    return str(out)


def dot_available() -> bool:
    return shutil.which("dot") is not None
