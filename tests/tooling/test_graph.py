"""`nndsl graph`: the DOT text parsed back, checked against the graph it was drawn from."""
from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import networkx as nx
import pytest

import nndsl
from nndsl.errors import NndslError
from nndsl.tools import graphviz as G
from nndsl.tools.commands import main

pytest.importorskip("graphviz")  # the Python binding: writing DOT needs nothing else
pydot = pytest.importorskip("pydot")  # to read the DOT back
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def unquote(v):
    if isinstance(v, str) and len(v) >= 2 and v[0] == v[-1] == '"':
        return v[1:-1].replace('\\"', '"')
    return v


def lines_of(label: str) -> str:
    """A label as `\\n`-separated text, also when it was drawn as an HTML table of lines."""
    import html
    if label.startswith("<<TABLE") and label.endswith(">>"):
        return "\\n".join(html.unescape(c) for c in re.findall(r"<TD>(.*?)</TD>", label))
    return label


class Dot:
    """A parsed DOT picture: nodes with their attributes and cluster path, edges with attributes."""

    def __init__(self, text: str):
        graphs = pydot.graph_from_dot_data(text)
        assert graphs and len(graphs) == 1, "not one DOT graph"
        self.graph = graphs[0]
        self.nodes: dict = {}
        self.clusters: dict = {}  # name -> label
        self.edges: list = []
        self._walk(self.graph, ())
        self.nx = nx.MultiDiGraph()
        self.nx.add_nodes_from(self.nodes)
        for a, b, attrs in self.edges:
            self.nx.add_edge(a, b, **attrs)

    def _walk(self, g, path: tuple) -> None:
        for n in g.get_nodes():
            name = n.get_name()
            if name in ("node", "edge", "graph"):
                continue
            attrs = {k: unquote(v) for k, v in n.get_attributes().items()}
            if "label" in attrs:
                attrs["label"] = lines_of(attrs["label"])
            self.nodes[name] = {"cluster": path, **attrs}
        for e in g.get_edges():
            self.edges.append((e.get_source(), e.get_destination(),
                               {k: unquote(v) for k, v in e.get_attributes().items()}))
        for sub in g.get_subgraphs():
            name = sub.get_name()
            self.clusters[name] = unquote(sub.get_attributes().get("label"))
            self._walk(sub, path + (name,))

    def label(self, n: str) -> str:
        return self.nodes[n]["label"]

    def edge_labels(self, a: str, b: str) -> set:
        return {attrs.get("label") for x, y, attrs in self.edges if (x, y) == (a, b)}


def dot_of(pic) -> Dot:
    return Dot(G.write(pic, None))


def test_model_graph_has_every_node_and_the_shape_on_every_edge():
    prog = nndsl.load(EXAMPLES / "resnet_digits.nn")
    model = prog.model("SmallResNet")
    g = model.graph()
    d = dot_of(G.model_picture(model))
    for n in g.nodes():
        assert f"n{n.id[1:]}" in d.nodes, n
        for src in g.input_ids(n.id):
            assert d.edge_labels(f"n{src[1:]}", f"n{n.id[1:]}") == {str(g.node(src).type)}
    assert d.nodes["out_logits"]["label"] == "output logits"
    assert len(d.edges) == sum(len(g.input_ids(n.id)) for n in g.nodes()) + len(g.outputs)


def test_sub_models_are_clusters_and_their_adds_sit_inside():
    prog = nndsl.load(EXAMPLES / "resnet_digits.nn")
    g = prog.model("SmallResNet").graph()
    d = dot_of(G.model_picture(prog.model("SmallResNet")))
    assert {f"cluster_BasicBlock_{i}" for i in range(4)} <= set(d.clusters)
    for n in g.nodes():
        drawn = d.nodes[f"n{n.id[1:]}"]
        if n.path:
            want = tuple(f"cluster_{'_'.join(n.path[:k])}" for k in range(1, len(n.path)))
            assert drawn["cluster"] == want, n
    # each residual `+` (no parameter path) is drawn in the block whose text made it
    adds = [n for n in g.nodes() if n.op == "add"]
    assert len(adds) == 4
    for n in adds:
        (user,) = g.users(n.id)
        assert d.nodes[f"n{n.id[1:]}"]["cluster"] == (f"cluster_{g.node(user).path[0]}",)


def test_depth_collapses_sub_models_into_boxes():
    prog = nndsl.load(EXAMPLES / "resnet_digits.nn")
    d = dot_of(G.model_picture(prog.model("SmallResNet"), depth=0))
    boxes = [n for n, a in d.nodes.items() if a.get("shape") == "box3d"]
    assert sorted(d.label(b) for b in boxes) == [f"BasicBlock_{i}" for i in range(4)]
    assert not d.clusters
    assert nx.is_directed_acyclic_graph(d.nx)
    assert d.edge_labels("m_BasicBlock_1", "m_BasicBlock_2") == {"f32[batch, 16, 16, 16]"}


def test_a_cell_is_its_step_with_the_recurrence_drawn():
    prog = nndsl.load(EXAMPLES / "adding_problem.nn")
    d = dot_of(G.model_picture(prog.model("AddingLSTM")))
    (cluster,) = [c for c in d.clusters if "LSTM_0" in c]
    assert "scanned over time" in d.clusters[cluster]
    inside = {n for n, a in d.nodes.items() if cluster in a["cluster"]}
    states = {d.label(n).split("\\n")[0]: n for n in inside if d.label(n).startswith("state ")}
    assert set(states) == {"state h", "state c"}
    back = [(a, b, attrs) for a, b, attrs in d.edges if attrs.get("style") == "dashed"]
    assert {(attrs["label"], b) for a, b, attrs in back} == {("h'", states["state h"]), ("c'", states["state c"])}
    # the sequence goes in at the step input; the output leaves from inside the cell to `last`
    (last,) = [n for n, a in d.nodes.items() if a["label"] == "last"]
    (src,) = [a for a, b, _ in d.edges if b == last]
    assert src in inside
    assert d.edge_labels(src, last) == {"f32[batch, time, 64]"}


def test_bidirectional_cells_are_two_scans():
    prog = nndsl.load(EXAMPLES / "sequence_tagging.nn")
    d = dot_of(G.model_picture(prog.model("BiTagger", vocab=10)))
    assert any(c.endswith("bidirectional_0_forward") for c in d.clusters)
    assert any(c.endswith("bidirectional_0_backward") for c in d.clusters)


def test_train_graph_shows_steps_models_and_losses():
    prog = nndsl.load(EXAMPLES / "gan_ring.nn")
    d = dot_of(G.train_picture(prog, "gan_ring"))
    assert d.clusters["cluster_D"] == "model D = Critic()"
    assert d.clusters["cluster_G"] == "model G = Generator(latent=16)"
    critic = [n for n, a in d.nodes.items() if a["cluster"] == ("cluster_D",)]
    uses = len(re.findall(r"-> D\b", (EXAMPLES / "gan_ring.nn").read_text()))
    assert len(critic) == uses > 1 and all(d.label(n) == "Critic" for n in critic)  # one weight set
    steps = {d.label(n).split("\\n")[0]: n for n in d.nodes if n.startswith("step_")}
    assert set(steps) == {"step 1: D", "step 2: G"}
    for step, loss, model in (("step 1: D", "loss_d_loss", "D"), ("step 2: G", "loss_g_loss", "G")):
        assert d.edge_labels(loss, steps[step]) == {"minimize"}
        (upd,) = [attrs for a, b, attrs in d.edges if a == steps[step] and attrs.get("label") == "updates"]
        assert upd["lhead"] == f"cluster_{model}"
    # which losses read which outputs: the real data reaches d_loss but not g_loss
    data = [n for n, a in d.nodes.items() if a["label"].startswith("data.x")][0]
    flow = nx.DiGraph((a, b) for a, b, attrs in d.edges if attrs.get("label") not in ("minimize", "updates"))
    assert nx.has_path(flow, data, "loss_d_loss") and not nx.has_path(flow, data, "loss_g_loss")
    assert nx.has_path(flow, "m_G", "loss_g_loss") and nx.has_path(flow, "m_G", "loss_d_loss")
    assert nx.has_path(flow, data, "metric_d_real") and not nx.has_path(flow, data, "metric_d_fake")


def test_repeated_and_joint_steps():
    prog = nndsl.load(EXAMPLES / "wgan_gp_ring.nn")
    d = dot_of(G.train_picture(prog))
    assert any(d.label(n).startswith("step 1: D \u00d7 5") for n in d.nodes if n.startswith("step_"))
    prog = nndsl.loads("""
model A { input x: [b, 2]  output y = x -> dense(2) }
train t {
  data ring_gaussians(batch=8)
  model f = A()
  model g = A()
  loss l = mean((data.x -> f -> g) ** 2)
  step f, g minimize l with sgd()
}""")
    d = dot_of(G.train_picture(prog))
    heads = {attrs["lhead"] for a, b, attrs in d.edges if attrs.get("label") == "updates"}
    assert heads == {"cluster_f", "cluster_g"}


def test_after_a_pass():
    prog = nndsl.load(EXAMPLES / "lenet5.nn")
    model = prog.model("LeNet5")
    before = dot_of(G.model_picture(model))
    after = dot_of(G.model_picture(model, after="dce", opt_level=1))
    assert "after simplify, fold-constants, cse, dce" in after.graph.get_attributes()["label"]
    assert {d.label(n) for d in (before,) for n in d.nodes} == {after.label(n) for n in after.nodes}
    with pytest.raises(NndslError, match="not in the pipeline"):
        G.model_picture(model, after="fold-batchnorm", opt_level=1)


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = main(argv)
    finally:
        sys.stdout, sys.stderr = old
    return code, out.getvalue(), err.getvalue()


def test_command_writes_dot(tmp_path):
    out = tmp_path / "lenet.dot"
    code, text, _ = run(["graph", str(EXAMPLES / "lenet5.nn"), "--train", "digits", "-o", str(out)])
    assert code == 0 and "wrote" in text
    d = Dot(out.read_text())
    assert any(n.startswith("step_") for n in d.nodes)
    code, text, _ = run(["graph", str(ROOT / "stdlib" / "mlp.nn"), "MLP", "--arg", "depth=3"])
    assert code == 0
    d = Dot(text)
    assert sum(1 for n in d.nodes if d.label(n).startswith("dense_")) == 4


@pytest.mark.skipif(not G.dot_available(), reason="Graphviz's dot is not installed")
def test_command_writes_svg_and_png(tmp_path):
    for suffix, magic in ((".svg", b"<svg"), (".png", b"\x89PNG")):
        out = tmp_path / f"g{suffix}"
        code, _, _ = run(["graph", str(EXAMPLES / "xor_mlp.nn"), "-o", str(out)])
        assert code == 0 and magic in out.read_bytes()[:400]


def test_missing_dot_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(G.shutil, "which", lambda name: None)
    code, _, err = run(["graph", str(EXAMPLES / "xor_mlp.nn"), "-o", str(tmp_path / "g.png")])
    assert code == 1
    assert "apt-get install graphviz" in err and ".dot" in err
    assert not (tmp_path / "g.png").exists()
    code, _, _ = run(["graph", str(EXAMPLES / "xor_mlp.nn"), "-o", str(tmp_path / "g.dot")])
    assert code == 0 and (tmp_path / "g.dot").exists()


def test_bad_output_name(tmp_path):
    code, _, err = run(["graph", str(EXAMPLES / "xor_mlp.nn"), "-o", str(tmp_path / "g.jpeg")])
    assert code == 1 and "format" in err


EQUATIONS = """
cell MinGRU(hidden: int) {
  input x: [batch, features]
  state h: [batch, hidden]
  z = sigmoid(dense(x, hidden))
  h_tilde = tanh(dense(x, hidden))
  h' = (1 - z) * h + z * h_tilde
  output h'
}
model Net {
  input x: [batch, time, 3]
  output y = x -> MinGRU(4) -> last
}
"""


def test_equation_names_label_their_nodes():
    prog = nndsl.loads(EQUATIONS)
    d = dot_of(G.model_picture(prog.model("Net")))
    labels = {d.label(n) for n in d.nodes}
    assert {"z = sigmoid", "h_tilde = tanh", "h' = +"} <= labels
    # a bare cell is drawn too (its scan is the whole picture)
    d = dot_of(G.model_picture(prog.model("MinGRU", hidden=4)))
    assert {"z = sigmoid", "h_tilde = tanh"} <= {d.label(n) for n in d.nodes}


def test_multi_line_labels_are_tables_so_underscores_are_not_overdrawn():
    text = G.write(G.model_picture(nndsl.load(EXAMPLES / "resnet_digits.nn").model("SmallResNet")), None)
    # `dense_0` over `dense(10)`: one table cell per line, HTML-escaped, never a plain `\n` label
    assert "<TR><TD>dense_0</TD></TR><TR><TD>dense(10)</TD></TR>" in text
    assert not re.search(r'label="[^"]*_[^"]*\\n', text)
    assert G.lines_label("a < b & c\\nx_y") == ('<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" '
                                               'CELLPADDING="1"><TR><TD>a &lt; b &amp; c</TD></TR>'
                                               '<TR><TD>x_y</TD></TR></TABLE>>')
    assert G.lines_label("one line") == "one line"
