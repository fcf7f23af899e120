"""PyTorch weights in: a `state_dict` saved with safetensors, mapped onto an nndsl model's parameters.

Never unpickles. A torch checkpoint (`.pt`, `.pth`) is a pickle, which runs code when loaded;
we ask for `safetensors.torch.save_file(model.state_dict(), "net.safetensors")` instead.

Matching. The tensors are grouped into modules by key prefix (`layer1.0.conv1.weight` belongs to
`layer1.0.conv1`), each module gets a family from its tensors (a `running_mean` makes a batchnorm,
`weight_ih_l0` a recurrent layer, a 4-d `weight` a 2-d convolution...), and the model's layers get
families the same way. Within a family the modules are taken in key order (numbers compared as
numbers: `features.10` after `features.9`) and the layers in graph order, and paired one by one.
A safetensors file keeps no insertion order, only names; key order is module order for torchvision's
ResNet (`conv1` < `conv2` < `downsample`, `bn1` < `bn2` < `downsample.1`), VGG and AlexNet
(`features.N`, `classifier.N`), and for any model whose names sort like its modules. When order
fails but every shape in a family is distinct, pairing by shape decides; otherwise a `--map` file
(`torch.prefix nndsl.layer` per line) pins the pairs. Every tensor is used exactly once and every
parameter is filled, or the error lists what was left over.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import NndslError

PICKLES = {".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar"}
SAVE_HINT = ("in PyTorch: `from safetensors.torch import save_file; "
             "save_file(model.state_dict(), \"net.safetensors\")`")


@dataclass
class Module:
    """One torch module's tensors, by leaf name (`weight`, `running_mean`, `weight_ih_l0`)."""

    name: str
    tensors: dict = field(default_factory=dict)
    keys: dict = field(default_factory=dict)  # leaf -> full key, for messages

    @property
    def family(self) -> str:
        t = self.tensors
        if any(k.startswith("weight_ih") for k in t):
            return "rnn"
        if "running_mean" in t:
            return "batchnorm"
        w = t.get("weight")
        if w is None:
            return "unknown"
        return {1: "norm", 2: "matrix", 3: "conv1", 4: "conv2", 5: "conv3"}.get(w.ndim, "unknown")


@dataclass
class Layer:
    """One nndsl layer that takes one torch module: a conv, a dense, a whole stdlib cell."""

    path: tuple
    op: str  # the op, or for a stdlib cell its name (LSTM, GRU, GRUResetAfter, RNN)
    span: object
    denses: list = field(default_factory=list)  # a cell's dense paths, in its definition's order
    flat_from: tuple | None = None  # a dense reading flatten([b, *spatial, c]): (*spatial, c)

    @property
    def family(self) -> str:
        return FAMILY.get(self.op, "rnn" if self.denses else "unknown")

    @property
    def name(self) -> str:
        return ".".join(self.path)


FAMILY = {"dense": "matrix", "dense_sn": "matrix", "embed": "matrix",
          "conv1d": "conv1", "conv_transpose1d": "conv1", "conv2d": "conv2", "conv2d_sn": "conv2",
          "conv_transpose2d": "conv2", "conv3d": "conv3", "conv_transpose3d": "conv3",
          "batchnorm": "batchnorm", "layernorm": "norm", "instance_norm": "norm"}


def natural(name: str) -> tuple:
    """`features.10` after `features.9`: digit runs compare as numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name) if p)


# ---------------------------------------------------------------------- reading
def read_state_dict(path: str | Path) -> dict:
    p = Path(path)
    if p.suffix.lower() in PICKLES:
        raise NndslError(f"{p.name} is a pickled PyTorch checkpoint; nndsl never unpickles (loading a "
                         f"pickle runs code from the file)", code="E650", help=f"save the state_dict with "
                         f"safetensors instead, {SAVE_HINT}")
    if not p.is_file():
        raise NndslError(f"no such weights file: {p}", code="E601")
    from safetensors import safe_open
    try:
        out = {}
        with safe_open(str(p), "np") as f:
            for k in f.keys():  # noqa: SIM118 - safe_open is not iterable
                out[k] = f.get_tensor(k)
    except Exception as e:  # noqa: BLE001 - a foreign or damaged file, or a dtype numpy lacks (bf16)
        head = p.read_bytes()[:2] if p.is_file() else b""
        why = "it looks like a zip or pickle (torch.save), not safetensors" if head in (b"PK", b"\x80\x02") \
            else str(e).splitlines()[0] if str(e) else type(e).__name__
        raise NndslError(f"cannot read {p.name} as safetensors: {why}", code="E651",
                         help=f"{SAVE_HINT}; convert bfloat16 weights with .float() first") from None
    return out


def modules(sd: dict) -> list[Module]:
    """Tensors grouped by module, in key order; a recurrent module splits per layer and direction."""
    mods: dict = {}
    for key, v in sd.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf == "num_batches_tracked":
            continue  # a training counter nndsl does not keep
        m = re.fullmatch(r"(weight|bias)_(ih|hh)_(l\d+(?:_reverse)?)", leaf)
        name = f"{prefix}:{m.group(3)}" if m else prefix
        leaf = f"{m.group(1)}_{m.group(2)}" if m else leaf
        mod = mods.setdefault(name, Module(name))
        mod.tensors[leaf] = np.asarray(v)
        mod.keys[leaf] = key
    return [mods[k] for k in sorted(mods, key=natural)]


def layers(g) -> list[Layer]:
    """The model's layers that hold parameters, in graph order (a stdlib cell counts as one)."""
    from .onnx.cells import standard_cell
    out, seen = [], set()

    def visit(graph):
        for node in graph.nodes():
            if node.op == "scan":
                body = node.attrs["body"]
                cell = standard_cell(body)
                if cell is None:
                    visit(body)
                elif node.path not in seen:
                    seen.add(node.path)
                    ds = [body.node(n).path for n in body.topo_order() if body.node(n).op == "dense"]
                    out.append(Layer(node.path, cell, node.span, ds))
            elif node.path is not None and node.op in FAMILY and node.path not in seen:
                seen.add(node.path)
                out.append(Layer(node.path, node.op, node.span, flat_from=_flattened(graph, node)))
            elif node.op == "param" and node.path not in seen:
                seen.add(node.path)
                out.append(Layer(node.path, "param", node.span))
    visit(g)
    return out


ELEMENTWISE = {"dropout", "identity", "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "silu",
               "swish", "relu6", "hard_tanh", "softplus", "detach"}


def _flattened(graph, node):
    """(*spatial, c) when a dense reads a flattened feature map: torch flattens [c, *spatial]."""
    if node.op not in ("dense", "dense_sn"):
        return None
    src = graph.node(graph.input_ids(node.id)[0])
    while src.op in ELEMENTWISE:  # flatten -> dropout -> dense (AlexNet) still reads a flattened map
        src = graph.node(graph.input_ids(src.id)[0])
    if src.op != "flatten":
        return None
    shape = graph.node(graph.input_ids(src.id)[0]).type.shape[1:]
    if len(shape) < 2 or not all(isinstance(d, int) for d in shape) or shape[-1] == 1:
        return None  # one channel: both orders agree
    return tuple(shape)


# ---------------------------------------------------------------------- one module -> one layer
class Mismatch(Exception):
    pass


def _t(w, *perm):
    return np.ascontiguousarray(np.transpose(w, perm))


def convert(mod: Module, layer: Layer, g) -> dict:
    """{(tree, path): array} for this pairing, checked against the model's parameter shapes."""
    t = dict(mod.tensors)
    out: dict = {}

    def put(tree, leaf_path, value):
        specs = g.params if tree == "params" else g.state
        spec = specs.get(leaf_path)
        if spec is None:
            raise Mismatch(f"`{mod.name}` has a tensor for `{'.'.join(leaf_path)}`, which `{layer.name}` lacks")
        want = tuple(spec.shape)
        if all(isinstance(d, int) for d in want) and tuple(value.shape) != want:
            raise Mismatch(f"`{mod.name}` gives `{'.'.join(leaf_path)}` the shape {list(value.shape)}, "
                           f"the model needs {want and list(want)}")
        out[(tree, leaf_path)] = value.astype(np.float32)

    def take(leaf):
        if leaf not in t:
            raise Mismatch(f"`{mod.name}` has no `{leaf}` for `{layer.name}`")
        return t.pop(leaf)

    p = layer.path
    op = layer.op
    if op in ("dense", "dense_sn"):
        w = take("weight")
        if layer.flat_from and w.ndim == 2 and w.shape[1] == int(np.prod(layer.flat_from)):
            *spatial, c = layer.flat_from  # columns in torch's (c, *spatial) order -> (*spatial, c)
            w = w.reshape(w.shape[0], c, *spatial)
            w = np.transpose(w, (0, *range(2, w.ndim), 1)).reshape(w.shape[0], -1)
        put("params", p + ("kernel",), _t(w, 1, 0))
    elif op == "embed":
        put("params", p + ("embedding",), take("weight"))
    elif op.startswith("conv_transpose"):  # torch [in, out, *k] -> [*k, in, out]
        w = take("weight")
        put("params", p + ("kernel",), _t(w, *range(2, w.ndim), 0, 1))
    elif op.startswith("conv"):  # torch [out, in / groups, *k] -> [*k, in / groups, out]
        w = take("weight")
        put("params", p + ("kernel",), _t(w, *range(2, w.ndim), 1, 0))
    elif op == "batchnorm":
        put("state", p + ("mean",), take("running_mean"))
        put("state", p + ("var",), take("running_var"))
        if "weight" in t:
            put("params", p + ("scale",), take("weight"))
    elif op in ("layernorm", "instance_norm"):
        put("params", p + ("scale",), take("weight"))
    elif layer.denses:
        _cell(mod, layer, t, take, put)
    else:
        raise Mismatch(f"`{layer.name}` ({op}) takes no PyTorch module")
    if "bias" in t:
        put("params", p + ("bias",), take("bias"))
    if t:
        raise Mismatch(f"`{mod.name}` has {', '.join(mod.keys[k] for k in t)} that `{layer.name}` ({op}) "
                       f"has no place for")
    return out


def _cell(mod, layer, t, take, put):
    """torch.nn.RNN/LSTM/GRU weights ([gates * hidden, in], gates stacked i,f,g,o or r,z,n) onto a
    stdlib cell's dense layers."""
    w_ih, w_hh = take("weight_ih"), take("weight_hh")
    hid = w_hh.shape[1]
    b_ih = take("bias_ih") if "bias_ih" in t else np.zeros(w_ih.shape[0], np.float32)
    b_hh = take("bias_hh") if "bias_hh" in t else np.zeros(w_ih.shape[0], np.float32)
    gates = w_ih.shape[0] // hid
    want = {"RNN": 1, "LSTM": 4, "GRU": 3, "GRUResetAfter": 3}[layer.op]
    if gates != want:
        kind = {1: "RNN", 4: "LSTM", 3: "GRU"}.get(gates, f"{gates}-gate")
        raise Mismatch(f"`{mod.name}` is a PyTorch {kind}, `{layer.name}` is a {layer.op} cell")
    if layer.op == "GRU":
        raise Mismatch(f"`{mod.name}` is a PyTorch GRU, which applies the reset gate after the hidden matmul; "
                       f"`{layer.name}` uses GRU (the reset gate before it): use GRUResetAfter({hid}) from cells")

    def gate(a, i):
        return a[i * hid:(i + 1) * hid]
    d = layer.denses
    if layer.op == "RNN" or layer.op == "LSTM":
        # torch i, f, g, o; nndsl's dense_0..3 are f, i, g, o. A kernel is [h; x] rows, h on top.
        order = [0] if layer.op == "RNN" else [1, 0, 2, 3]
        for path, i in zip(d, order):
            put("params", path + ("kernel",), np.concatenate([gate(w_hh, i).T, gate(w_ih, i).T]))
            put("params", path + ("bias",), gate(b_ih, i) + gate(b_hh, i))
    else:  # GRUResetAfter: dense (x, h) pairs for r, z, n, as torch stacks them
        for j in range(3):
            put("params", d[2 * j] + ("kernel",), np.ascontiguousarray(gate(w_ih, j).T))
            put("params", d[2 * j] + ("bias",), gate(b_ih, j))
            put("params", d[2 * j + 1] + ("kernel",), np.ascontiguousarray(gate(w_hh, j).T))
            put("params", d[2 * j + 1] + ("bias",), gate(b_hh, j))


# ---------------------------------------------------------------------- pairing
def read_map(path: str | Path) -> list[tuple[str, str, object]]:
    """`from to` lines (torch module prefix, nndsl layer path with dots); `#` comments."""
    from .source import Source, Span
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    src = Source(text, str(path))
    pairs = []
    for i, line in enumerate(text.split("\n"), 1):
        body = line.split("#", 1)[0]
        parts = body.split()
        if not parts:
            continue
        span = Span(src, i, len(line) - len(line.lstrip()) + 1, i, len(body.rstrip()) + 1)
        if len(parts) != 2:
            raise NndslError("a map line is `torch.module nndsl.layer` (two names)", span, code="E655")
        pairs.append((parts[0], parts[1], span))
    return pairs


def pair(mods: list[Module], lays: list[Layer], mapping=()) -> list[tuple[Module, Layer]]:
    by_mod = {m.name: m for m in mods}
    by_lay = {lay.name: lay for lay in lays}
    pairs = []
    for src, dst, span in mapping:
        m = by_mod.get(src) or by_mod.get(src.rsplit(".", 1)[0] if src.rsplit(".", 1)[-1] in ("weight", "bias") else "")
        if m is None:
            raise NndslError(f"no module `{src}` in the PyTorch weights", span, code="E655",
                             help="modules: " + ", ".join(list(by_mod)[:12]) + (" ..." if len(by_mod) > 12 else ""))
        lay = by_lay.get(dst.replace("/", "."))
        if lay is None:
            raise NndslError(f"no layer `{dst}` with parameters in the model", span, code="E655",
                             help="layers: " + ", ".join(list(by_lay)[:12]) + (" ..." if len(by_lay) > 12 else ""))
        pairs.append((m, lay))
    used_m = {id(m) for m, _ in pairs}
    used_l = {id(lay) for _, lay in pairs}
    families: dict = {}
    for m in mods:
        if id(m) not in used_m:
            families.setdefault(m.family, ([], []))[0].append(m)
    for lay in lays:
        if id(lay) not in used_l:
            families.setdefault(lay.family, ([], []))[1].append(lay)
    return pairs, families


def convert_state_dict(sd: dict, model, mapping=()) -> dict:
    """nndsl variables {"params", "state"} from a PyTorch state_dict (numpy arrays by key)."""
    from .lower.interpret import set_path
    g = model.graph()
    mods, lays = modules(sd), layers(g)
    problems, values = [], {}
    pinned, families = pair(mods, lays, mapping)
    for m, lay in pinned:
        try:
            values.update(convert(m, lay, g))
        except Mismatch as e:
            problems.append(str(e))
    for fam, (ms, ls) in families.items():
        if len(ms) != len(ls):
            what = "unrecognized" if fam == "unknown" else fam
            problems.append(f"{len(ms)} PyTorch {what} module(s) ({_names(m.name for m in ms)}) for "
                            f"{len(ls)} such layer(s) in the model ({_names(lay.name for lay in ls)})")
            continue
        got = _in_order(ms, ls, g)
        if isinstance(got, str):
            shaped = _by_shape(ms, ls, g)
            if shaped is None:
                problems.append(got)
                continue
            got = shaped
        values.update(got)
    missing = [".".join(p) for p in list(g.params) if ("params", p) not in values] + \
              [".".join(p) + " (state)" for p in list(g.state) if ("state", p) not in values]
    if missing and not problems:
        problems.append(f"no tensor for {_names(missing)}")
    if problems:
        raise NndslError("the PyTorch weights do not map onto `" + model.name + "`: " + "; ".join(problems),
                         code="E653", help="pair modules and layers by name with --map FILE "
                         "(lines `torch.module nndsl.layer`); `nndsl summary` lists the layers")
    out: dict = {"params": {}, "state": {}}
    for (tree, path), v in values.items():
        set_path(out[tree], path, v)
    return out


def _in_order(ms, ls, g):
    """The family paired in order: the values, or the first mismatch's message."""
    values = {}
    for m, lay in zip(ms, ls):
        try:
            values.update(convert(m, lay, g))
        except Mismatch as e:
            return str(e)
    return values


def _by_shape(ms, ls, g):
    """When order fails: the pairing where each module fits exactly one layer, if there is one."""
    fits = {}
    for m in ms:
        ok = []
        for lay in ls:
            try:
                ok.append((lay, convert(m, lay, g)))
            except Mismatch:
                pass
        if len(ok) != 1:
            return None
        fits[m.name] = ok[0]
    if len({id(lay) for lay, _ in fits.values()}) != len(ls):
        return None
    values = {}
    for _, v in fits.values():
        values.update(v)
    return values


def _names(names) -> str:
    names = list(names)
    return ", ".join(f"`{n}`" for n in names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def convert_torch_weights(path: str | Path, model, out: str | Path | None = None,
                          map_file: str | Path | None = None) -> dict:
    """Reads a PyTorch state_dict (safetensors) and returns nndsl variables for `model`; with `out`,
    also saves them as nndsl weights (what `nndsl run --weights` and `export --weights` read)."""
    sd = read_state_dict(path)
    mapping = read_map(map_file) if map_file else ()
    variables = convert_state_dict(sd, model, mapping)
    if out is not None:
        from .io import save_variables
        save_variables(Path(out), variables)
    return variables
