"""AST to graph: name resolution, static evaluation, layer application, shape inference.

Elaboration is specialised to the input types it is given: symbolic for `nndsl check` and
`--emit graph`, concrete (every dimension an int) for `init`/`apply`. Every node gets the span of
the text that made it, so every error can point at the text.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import (NameResolutionError, NndslError, ShapeError, TypeCheckError,
                      UnsupportedError, closest, LimitError)
from ..ir.graph import Graph, stable_hash  # noqa: F401  (re-exported)
from ..ir.types import DTYPES, TensorType, shape_str
from .. import bounds
from ..ops import OPS, OpError
from ..ops import init as I
from ..source import Span
from ..syntax import ast
from ..values import (BidirectionalLayer, BoundLayer, Captured, ChainLayer, Poison, Poisoned, DefRef, Layer, ModelLayer,
                      NeedsConcrete, Opaque, OpLayer, OpRef, Record, StackLayer, Sym, SymDim, TensorVal,
                      TupleVal, UnrollLayer, describe)
from . import order as ordering

MAX_NODES = 200_000
MAX_DEPTH = 64
# Elaboration steps (expressions evaluated, layers applied) for one program: a model that uses
# itself twice per level doubles its work per level while its graph stays small (identical
# pure nodes are shared), so the node limit alone never fires. The examples and the standard
# library need at most a few thousand; this is ~17x ResNet-50 and is spent in about a second.
# Each Builder adds two steps per character of the program's text (see Builder.budget).
MAX_WORK = 100_000
TYPE_NAMES = {"int", "float", "bool", "str", "string", "layer", "any", "shape", "dim", "tensor"}


class WorkLimit(LimitError):
    """The graph or the elaboration work outgrew its limit: it stops elaboration as a whole
    (not recorded per statement, as other errors are)."""


@dataclass
class Scope:
    """Where parameters of the layers applied now are named: a path and per-kind counters.

    Layers are named as they are applied, which is dependency order; `source_order_renames` then
    gives the renaming that numbers each kind in source order instead, as the language promises."""

    path: tuple
    counters: dict = field(default_factory=dict)
    made: list = field(default_factory=list)  # (kind, index, (line, col, sequence))

    def fresh(self, kind: str, span=None) -> tuple:
        i = self.counters.get(kind, 0)
        self.counters[kind] = i + 1
        pos = (span.line, span.col) if span is not None else (0, 0)
        self.made.append((kind, i, pos + (len(self.made),)))
        return self.path + (f"{kind}_{i}",)

    def source_order_renames(self) -> dict:
        out = {}
        for kind in {k for k, _, _ in self.made}:
            made = [(i, key) for k, i, key in self.made if k == kind]
            for new, (old, _) in enumerate(sorted(made, key=lambda m: m[1])):
                if new != old:
                    out[f"{kind}_{old}"] = f"{kind}_{new}"
        return out


@dataclass
class Env:
    values: dict = field(default_factory=dict)
    spans: dict = field(default_factory=dict)
    parent: "Env | None" = None

    def lookup(self, name: str):
        e = self
        while e is not None:
            if name in e.values:
                return e.values[name]
            e = e.parent
        raise KeyError(name)

    def has(self, name: str) -> bool:
        try:
            self.lookup(name)
            return True
        except KeyError:
            return False

    def names(self) -> set:
        out, e = set(), self
        while e is not None:
            out |= set(e.values)
            e = e.parent
        return out


class Builder:
    """Evaluates model and train bodies into one Graph (plus scan bodies for cells)."""

    def __init__(self, program, graph: Graph | None = None):
        self.program = program
        self.root = graph or Graph()
        self.g = self.root
        self.scope = Scope(())
        self.stack: list[tuple] = []  # models being elaborated: recursion and depth limit
        self.errors: list = []  # every error of the program, reported together
        self.work = 0  # elaboration steps so far, against self.budget
        self.call_spans: list = []  # beside `stack`: where each model being elaborated was used
        # linear in the program's text, so a long but plain program (300,000 statements) is fine;
        # only work that outgrows the text (a model that uses itself twice per level) runs out
        sources = {id(d.span.source): len(d.span.source.text) for d in program.definitions.values()
                   if getattr(d, "span", None) is not None}
        self.budget = MAX_WORK + 2 * sum(sources.values())
        # `nndsl check` elaborates every definition with symbolic static arguments: a statement
        # that cannot be decided without a value is recorded here (and reported as a warning
        # unless some use of its definition checked it), never silently passed.
        self.checking = False
        self.unchecked: list = []  # (definition name, statement span, reason, names it reads)
        self.complete: set = set()  # definitions elaborated with nothing left unchecked
        self.free: set = set()  # static arguments checked as symbolic sizes (`classes`)

    def tick(self, span) -> None:
        """Counts one elaboration step; refuses the program once it has taken MAX_WORK of them."""
        self.work += 1
        if self.work > self.budget:
            names = " -> ".join(dict.fromkeys(n for n, _ in self.stack)) or None
            # point at the first use of a model inside itself: where the growth starts, the
            # same place however far it got
            seen = set()
            for (name, _), call in zip(self.stack, self.call_spans):
                if name in seen and call is not None:
                    span = call
                    break
                seen.add(name)
            raise WorkLimit(f"elaboration took more than {self.budget:,} steps"
                             + (f" (inside {names})" if names else ""), span, code="E411",
                             help="a model that uses itself more than once per level grows exponentially; "
                                  "use a smaller depth or a `LAYER * n` stack")

    # ------------------------------------------------------------------ graph helpers
    def add_node(self, op: str, inputs: list[TensorVal], attrs: dict, span, path=None, label=None):
        opdef = OPS[op]
        types = [x.type for x in inputs]
        try:
            out = opdef.infer(*types, **attrs)
        except OpError as e:
            what = label or op
            notes = [(x.span, f"this input is {x.type}") for x in inputs
                     if x.span is not None and span is not None and x.span != span and types]
            raise ShapeError(f"{what}: {e}" if not str(e).startswith(op) else str(e), span,
                             help=e.help, code="E301", notes=notes[:3]) from None
        except NeedsConcrete:
            raise
        except (TypeError, ValueError, KeyError, IndexError) as e:
            if self.checking and _has_symbolic(attrs):
                names = ", ".join(f"`{n}`" for n in _symbolic_names(attrs))
                raise NeedsConcrete(f"the output of {label or op} without the value of {names}", span) from None
            # a shape rule fed an argument of a kind it cannot use (a float padding, say): the
            # user's mistake, reported as such rather than as a traceback
            # (the Python text of `e` describes nndsl's internals, not the user's program)
            raise TypeCheckError(f"{label or op}: these arguments cannot be used together", span,
                                 code="E326", help=_accepted(opdef)) from None
        if len(self.root) >= MAX_NODES:
            raise WorkLimit(f"the graph grew past {MAX_NODES:,} nodes", span, code="E404")
        if opdef.has_params and path is not None:
            self._register(opdef, types, attrs, path, span, label or op)
        key = _memo_key(opdef, inputs, attrs)
        if key is not None and key in self.g.memo:
            # The same pure computation twice (the four `[h, x]` of an LSTM) is one node: the
            # backward pass would otherwise pay for every copy.
            node = self.g.node(self.g.memo[key])
        else:
            node = self.g.add(op, [x.node for x in inputs], attrs, out, span, path, label)
            if key is not None:
                self.g.memo[key] = node.id
        if isinstance(out, tuple):
            return TupleVal([TensorVal(self.g.add("get_item", [node.id], {"index": i}, t, span).id, t, span)
                             for i, t in enumerate(out)])
        return TensorVal(node.id, out, span)

    def _register(self, opdef, types, attrs, path, span, label):
        for registry, specs in ((self.root.params, opdef.params(*types, **attrs)),
                                (self.root.state, opdef.state(*types, **attrs))):
            for leaf, spec in specs.items():
                key = path + (leaf,) if leaf else path
                prev = registry.get(key)
                if prev is not None and tuple(prev.shape) != tuple(spec.shape):
                    raise ShapeError(
                        f"shared layer `{'.'.join(path)}` needs {leaf or 'its parameter'} of shape "
                        f"{shape_str(spec.shape)} here but {shape_str(prev.shape)} where first applied",
                        span, code="E302", help="a bound layer must see inputs of one shape")
                registry[key] = spec

    def const(self, value, span) -> TensorVal:
        dtype = "float32" if isinstance(value, float) else "int32" if not isinstance(value, bool) else "bool"
        if isinstance(value, int) and not isinstance(value, bool):
            dtype = "float32"  # numbers in tensor arithmetic are floats, as in numpy with f32 arrays
        return self.add_node("const", [], {"value": value, "dtype": dtype}, span)

    def as_tensor(self, v, span) -> TensorVal:
        if isinstance(v, TensorVal):
            return v
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return self.const(float(v), span)
        raise TypeCheckError(f"expected a tensor, found {describe(v)}", span, code="E311")

    # ------------------------------------------------------------------ expressions
    def eval(self, e, env: Env):
        self.tick(e.span)
        method = getattr(self, "eval_" + type(e).__name__, None)
        if method is None:
            raise UnsupportedError(f"`{type(e).__name__}` is not an expression", e.span)
        return method(e, env)

    def eval_Number(self, e, env):
        return e.value

    def eval_String(self, e, env):
        return e.value

    def eval_Bool(self, e, env):
        return e.value

    def eval_Paren(self, e, env):
        return self.eval(e.expr, env)

    def eval_Name(self, e: ast.Name, env: Env):
        try:
            v = env.lookup(e.id)
        except KeyError:
            pass
        else:
            if isinstance(v, Poison):
                raise Poisoned(e.id)
            if isinstance(v, Captured):
                raise TypeCheckError(f"tensor argument `{e.id}` can only give a state its initial value "
                                     "inside a cell", e.span, code="E350",
                                     help=f"write `state NAME: [...] = {e.id}`")
            return v
        if e.id == "none":
            return None
        d = self.program.definitions.get(e.id)
        if isinstance(d, ast.ModelDef):  # train blocks are not values: they may share a name with an op
            return DefRef(e.id, d, e.span)
        if e.id in OPS and OPS[e.id].kind != "internal" or e.id in SPECIAL:
            return OpRef(e.id, e.span)
        known = env.names() | set(self.program.definitions) | set(OPS) | set(SPECIAL)
        guess = closest(e.id, known)
        raise NameResolutionError(f"unknown name `{e.id}`", e.span, code="E202",
                                  help=f"did you mean `{guess}`?" if guess else None)

    def eval_Attr(self, e: ast.Attr, env):
        obj = self.eval(e.obj, env)
        if isinstance(obj, Record):
            if e.name in obj.fields:
                return obj.fields[e.name]
            guess = closest(e.name, obj.fields)
            raise NameResolutionError(f"{describe(obj)} has no field `{e.name}`", e.span, code="E203",
                                      help=f"did you mean `{guess}`?" if guess else None)
        if isinstance(obj, TensorVal) and obj.fields and e.name in obj.fields:
            return obj.fields[e.name]
        if isinstance(obj, TensorVal) and e.name == "shape":
            return [Sym(d) if isinstance(d, str) else d for d in obj.type.shape]
        raise TypeCheckError(f"{describe(obj)} has no fields (`.{e.name}`)", e.span, code="E312")

    def eval_Index(self, e: ast.Index, env):
        obj = self.eval(e.obj, env)
        idx = self.eval(e.index, env)
        if isinstance(idx, Sym):
            raise NeedsConcrete("an index given by a symbolic value", e.index.span)
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise TypeCheckError(f"an index must be a static integer, found {describe(idx)}", e.index.span)
        items = obj.items if isinstance(obj, TupleVal) else obj if isinstance(obj, list) else None
        if items is None:
            raise TypeCheckError(f"cannot index {describe(obj)}", e.span, code="E312")
        if not -len(items) <= idx < len(items):
            raise ShapeError(f"index {idx} out of range for {len(items)} values", e.index.span)
        return items[idx]

    def eval_ListExpr(self, e: ast.ListExpr, env):
        vals = [self.eval(x, env) for x in e.items]
        if any(isinstance(v, TensorVal) for v in vals):
            tensors = [self.as_tensor(v, x.span) for v, x in zip(vals, e.items)]
            return self.add_node("concat", tensors, {"axis": -1}, e.span, label="concat")
        return vals

    def eval_Unary(self, e: ast.Unary, env):
        v = self.eval(e.operand, env)
        if e.op == "not":
            return not self.truth(v, e.operand.span)
        if isinstance(v, TensorVal):
            return v if e.op == "+" else self.add_node("neg", [v], {}, e.span)
        self.require_number(v, e.operand.span)
        if e.op == "+":
            return v
        return -v if isinstance(v, Sym) else bounds.check(-v, e.span)

    def eval_Power(self, e: ast.Power, env):
        return self.binop("**", self.eval(e.base, env), self.eval(e.exp, env), e, e.base, e.exp)

    def eval_BinOps(self, e: ast.BinOps, env):
        acc = self.eval(e.operands[0], env)
        for op, rhs_e in zip(e.ops, e.operands[1:]):
            acc = self.binop(op, acc, self.eval(rhs_e, env), e, e.operands[0], rhs_e)
        return acc

    def eval_Compare(self, e: ast.Compare, env):
        a, b = self.eval(e.left, env), self.eval(e.right, env)
        if isinstance(a, TensorVal) or isinstance(b, TensorVal):
            name = {"==": "equal", "!=": "not_equal", "<": "less", "<=": "less_equal", ">": "greater",
                    ">=": "greater_equal"}[e.op]
            return self.add_node(name, [self.as_tensor(a, e.left.span), self.as_tensor(b, e.right.span)], {},
                                 e.span, label=f"`{e.op}`")
        for v, x in ((a, e.left), (b, e.right)):
            if self.is_layer(v):
                raise TypeCheckError(f"`{e.op}` cannot compare {describe(v)}", x.span, code="E313")
        if isinstance(a, Sym) or isinstance(b, Sym):
            if e.op in ("==", "!=") and isinstance(a, Sym) and isinstance(b, Sym) and a == b:
                return e.op == "=="
            raise NeedsConcrete(f"`{e.op}` on a symbolic dimension", e.span)
        try:
            if e.op in ("==", "!="):
                return (a == b) == (e.op == "==")
            return {"<": lambda: a < b, "<=": lambda: a <= b, ">": lambda: a > b,
                    ">=": lambda: a >= b}[e.op]()
        except TypeError:
            raise TypeCheckError(f"cannot compare {describe(a)} and {describe(b)}", e.span) from None

    def eval_BoolOp(self, e: ast.BoolOp, env):
        for x in e.operands:
            t = self.truth(self.eval(x, env), x.span)
            if e.op == "or" and t:
                return True
            if e.op == "and" and not t:
                return False
        return e.op == "and"

    def eval_If(self, e: ast.If, env):
        cond = self.truth(self.eval(e.cond, env), e.cond.span)
        return self.eval(e.then if cond else e.orelse, env)

    def truth(self, v, span) -> bool:
        if isinstance(v, bool):
            return v
        if isinstance(v, Sym):
            raise NeedsConcrete("a symbolic dimension as a condition", span)
        if isinstance(v, (int, float)):
            return bool(v)
        raise TypeCheckError(f"a condition must be a static boolean, found {describe(v)}", span,
                             code="E314", help="`if` chooses at compile time; it cannot test tensor values")

    def require_number(self, v, span):
        if isinstance(v, bool) or not isinstance(v, (int, float, Sym)):
            raise TypeCheckError(f"expected a number, found {describe(v)}", span, code="E311")

    def binop(self, op, a, b, e, ea, eb):
        layer_a, layer_b = self.is_layer(a), self.is_layer(b)
        if op == "*" and (layer_a or layer_b):
            layer, n, ne = (a, b, eb) if layer_a else (b, a, ea)
            if isinstance(n, Sym):
                raise NeedsConcrete(f"how often to stack a layer (`{n}`)", ne.span)
            if isinstance(n, bool) or not isinstance(n, int):
                raise TypeCheckError(f"`LAYER * n` needs a static integer n, found {describe(n)}",
                                     ne.span, code="E315")
            if n < 1:
                raise ShapeError(f"cannot stack a layer {n} times", ne.span, code="E315")
            if n > MAX_NODES:  # refused before any copy is made: each copy costs at least a step
                raise LimitError(f"a stack of {bounds.short(n)} copies is more than the graph can hold "
                                 f"({MAX_NODES:,} nodes)", ne.span, code="E404")
            return StackLayer(self.as_layer(layer, e.span), n, span=e.span)
        if layer_a or layer_b:
            bad = ea if layer_a else eb
            raise TypeCheckError(f"`{op}` needs tensors or numbers, found a layer", bad.span, code="E316",
                                 help=f"`->` binds loosest, so `x -> f {op} y` means `x -> (f {op} y)`; "
                                      f"write `(x -> f) {op} y`")
        if isinstance(a, TensorVal) or isinstance(b, TensorVal):
            name = {"+": "add", "-": "sub", "*": "mul", "/": "div", "@": "matmul", "**": "pow"}[op]
            ta, tb = self.as_tensor(a, ea.span), self.as_tensor(b, eb.span)
            return self.add_node(name, [ta, tb], {}, e.span, label=f"`{op}`")
        self.require_number(a, ea.span)
        self.require_number(b, eb.span)
        if op == "@":
            raise TypeCheckError("`@` multiplies tensors, not numbers", e.span)
        if op == "/" and isinstance(a, int) and isinstance(b, int):
            if b == 0:
                raise ShapeError("division by zero", eb.span)
            return a // b if a % b == 0 else a / b
        try:
            if isinstance(a, Sym) or isinstance(b, Sym):
                return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                        "/": lambda: a / b, "**": lambda: a ** b}[op]()
            return bounds.arith(op, a, b, e.span)
        except ZeroDivisionError:
            raise ShapeError("division by zero", eb.span) from None
        except (OverflowError, TypeError):
            raise TypeCheckError(f"cannot compute `{op}` on these values", e.span) from None

    def is_layer(self, v) -> bool:
        if isinstance(v, (Layer, OpRef)):
            return True
        return isinstance(v, DefRef) and isinstance(v.defn, ast.ModelDef)

    def as_layer(self, v, span) -> Layer:
        if isinstance(v, Layer):
            return v
        if isinstance(v, OpRef):
            if v.name in SPECIAL and v.name not in OPS:
                raise TypeCheckError(f"`{v.name}` needs arguments", span, code="E317")
            return self.make_op_layer(v.name, [], {}, span)
        if isinstance(v, DefRef) and isinstance(v.defn, ast.ModelDef):
            return ModelLayer(v.defn, self.bind_model_args(v.defn, [], {}, span), span=span)
        raise TypeCheckError(f"expected a layer, found {describe(v)}", span, code="E317",
                             help="only layers can follow `->`")

    def eval_Chain(self, e: ast.Chain, env):
        v = self.eval(e.items[0], env)
        for item in e.items[1:]:
            f = self.eval(item, env)
            if isinstance(v, TensorVal) or isinstance(v, TupleVal):
                ins = v.items if isinstance(v, TupleVal) else [v]
                v = self.apply(self.as_layer(f, item.span), ins, item.span)
            elif self.is_layer(v):
                left = self.as_layer(v, e.items[0].span)
                right = self.as_layer(f, item.span)
                layers = (left.layers if isinstance(left, ChainLayer) else [left]) + [right]
                v = ChainLayer(layers, span=e.span)
            else:
                raise TypeCheckError(f"`->` applies a layer to a tensor, but its left side is "
                                     f"{describe(v)}", e.items[0].span, code="E318")
        return v

    # ------------------------------------------------------------------ calls
    def eval_Call(self, e: ast.Call, env):
        f = self.eval(e.func, env)
        pos, kw, kw_spans = [], {}, {}
        for a in e.args:
            if isinstance(a, ast.Kwarg):
                if a.name in kw:
                    raise TypeCheckError(f"argument `{a.name}` given twice", a.span, code="E319")
                kw[a.name] = self.eval(a.value, env)
                kw_spans[a.name] = a.span
            else:
                if kw:
                    raise TypeCheckError("a positional argument follows a named one", a.span, code="E319")
                pos.append((self.eval(a, env), a.span))
        if isinstance(f, OpRef) and f.name in SPECIAL:
            out = SPECIAL[f.name](self, e, pos, kw, env)
            if out is not NotImplemented:
                return out
        n_tensor = 0
        while n_tensor < len(pos) and isinstance(pos[n_tensor][0], TensorVal):
            n_tensor += 1
        if isinstance(f, OpRef):
            return self.call_op(f.name, pos, kw, kw_spans, n_tensor, e.span)
        if isinstance(f, DefRef) and isinstance(f.defn, ast.ModelDef):
            n_in = sum(isinstance(s, ast.Input) for s in f.defn.body)
            if n_tensor:
                args = self.bind_model_args(f.defn, [p for p, _ in pos[n_in:]], kw, e.span,
                                            [s for _, s in pos[n_in:]], kw_spans)
                layer = ModelLayer(f.defn, args, span=e.span)
                return self.apply(layer, [p for p, _ in pos[:n_in]], e.span)
            args = self.bind_model_args(f.defn, [p for p, _ in pos], kw, e.span,
                                        [s for _, s in pos], kw_spans)
            return ModelLayer(f.defn, args, span=e.span)
        if isinstance(f, Layer) and n_tensor and not kw and n_tensor == len(pos):
            return self.apply(f, [p for p, _ in pos], e.span)
        raise TypeCheckError(f"{describe(f)} cannot be called", e.func.span, code="E320")

    def call_op(self, name, pos, kw, kw_spans, n_tensor, span):
        opdef = OPS[name]
        if opdef.kind == "random":
            return self.apply(self.make_op_layer(name, pos, kw, span, kw_spans=kw_spans), [], span)
        if n_tensor == 0:
            return self.make_op_layer(name, pos, kw, span, kw_spans=kw_spans)
        if opdef.variadic:
            ins, rest = [p for p, _ in pos[:n_tensor]], pos[n_tensor:]
        else:
            # Fill input slots in order: a tensor, or a number where the slot takes a constant
            # (`bce_logits(d, 1)`); the first other value starts the static arguments
            # (`x -> conditional_batchnorm(labels, 10)`).
            ins = []
            for i, (v, s) in enumerate(pos[:len(opdef.inputs)]):
                slot = opdef.inputs[i]
                if isinstance(v, TensorVal):
                    ins.append(v)
                elif slot in opdef.const_inputs and isinstance(v, (int, float)) and not isinstance(v, bool):
                    ins.append(self.const(float(v), s))
                else:
                    break
            rest = pos[len(ins):]
            if rest and isinstance(rest[0][0], TensorVal):
                raise TypeCheckError(f"`{name}` takes {len(opdef.inputs)} tensor inputs; this one is extra",
                                     rest[0][1], code="E321")
        layer = self.make_op_layer(name, rest, kw, span, kw_spans=kw_spans)
        if len(ins) < len(opdef.inputs) and not opdef.variadic:
            return self._partial(layer, ins, span)
        return self.apply(layer, ins, span)

    def _partial(self, layer: OpLayer, given: list, span):
        """`cross_entropy(y)` in a chain: the chain's value becomes the first input."""
        return OpLayer(layer.op, layer.attrs, bound=list(given), span=span, kind_name=layer.kind_name)

    def make_op_layer(self, name, pos, kw, span, kw_spans=None) -> OpLayer:
        opdef = OPS[name]
        attrs = bind_args(name, opdef.attrs, pos, kw, span, kw_spans or {}, symbolic=self.checking)
        return OpLayer(name, attrs, span=span)

    def bind_model_args(self, defn, pos, kw, span, pos_spans=None, kw_spans=None) -> dict:
        params = defn.params
        names = [p.name for p in params]
        if len(pos) > len(params):
            raise TypeCheckError(f"{defn.kind} `{defn.name}` takes {len(params)} arguments, "
                                 f"{len(pos)} given", span, code="E322")
        out = {}
        for p, v in zip(params, pos):
            out[p.name] = v
        for k, v in kw.items():
            if k not in names:
                guess = closest(k, names)
                raise TypeCheckError(f"{defn.kind} `{defn.name}` has no argument `{k}`",
                                     (kw_spans or {}).get(k, span), code="E323",
                                     help=f"did you mean `{guess}`?" if guess else
                                     f"its arguments are: {', '.join(names) or 'none'}")
            if k in out:
                raise TypeCheckError(f"argument `{k}` given twice", (kw_spans or {}).get(k, span),
                                     code="E319")
            out[k] = v
        for p in params:
            if p.name not in out:
                if p.default is None:
                    raise TypeCheckError(f"{defn.kind} `{defn.name}` needs argument `{p.name}`", span,
                                         code="E324")
                out[p.name] = self.eval(p.default, Env(dict(out)))
            check_arg_type(defn.name, p.name, p.type, out[p.name], span, p.span)
        return out

    def guarded(self, stmt, names, env, body) -> None:
        """Runs one statement; on a user error, records it and poisons the names it defines, so
        the rest of the body is still checked and every independent mistake is reported."""
        try:
            body()
        except WorkLimit:
            raise  # out of budget: every later statement would say so again
        except NeedsConcrete as e:
            if not self.checking:
                raise
            self._not_checked(stmt, e.message, env)
            self._poison(names, env, stmt)
        except Poisoned:
            self._poison(names, env, stmt)
        except NndslError as e:
            # a value used where an opaque stand-in cannot go (as a layer, a number) is not the
            # program's mistake; a shape mistake beside it still is
            opaque = self._opaque_read(stmt, env) if self.checking and isinstance(e, TypeCheckError) else None
            if opaque is not None:  # a mistake only a stand-in value made: not the program's
                self._not_checked(stmt, f"this statement depends on what `{opaque}` is", env, [opaque])
            else:
                self.errors.extend(getattr(e, "errors", [e]))
            self._poison(names, env, stmt)

    def _opaque_read(self, stmt, env) -> str | None:
        for n in sorted(ordering.reads(stmt)):
            try:
                v = env.lookup(n)
            except KeyError:
                continue
            if isinstance(v, Opaque):
                return v.name
        return None

    def _not_checked(self, stmt, reason: str, env, culprits=None) -> None:
        owner = self.stack[-1][0] if self.stack else None
        self.unchecked.append((owner, stmt.span, reason, frozenset(culprits or ordering.reads(stmt))))

    def _poison(self, names, env, stmt):
        for n in names:
            if n not in env.values:
                env.values[n] = Poison(n)
                env.spans[n] = stmt.span

    def raise_errors(self) -> None:
        if self.errors:
            from ..errors import ErrorGroup
            errs, self.errors = self.errors, []
            raise errs[0] if len(errs) == 1 else ErrorGroup(errs)

    # ------------------------------------------------------------------ layers
    def apply(self, layer: Layer, inputs: list, span) -> object:
        from . import apply as A
        return A.apply_layer(self, layer, inputs, span)


def _accepted(opdef) -> str | None:
    lines = [f"`{a.name}`: {a.accepts()}" for a in opdef.attrs if a.type != "any" or a.name == "padding"]
    return "; ".join(lines) or None


def _memo_key(opdef, inputs, attrs):
    if not opdef.shareable:
        return None
    try:
        key = (opdef.name, tuple(x.node for x in inputs), tuple(sorted(attrs.items())))
        hash(key)
    except TypeError:
        return None
    return key


def check_arg_type(owner, name, typ, value, span, decl_span=None):
    if typ is None or typ == "any" or isinstance(value, Opaque):
        return
    if typ not in TYPE_NAMES:
        raise TypeCheckError(f"unknown type `{typ}` for argument `{name}`", decl_span or span,
                             code="E325", help=f"types are: {', '.join(sorted(TYPE_NAMES))}")
    ok = {
        "int": isinstance(value, (int, Sym)) and not isinstance(value, bool),
        "dim": isinstance(value, (int, Sym)) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str), "string": isinstance(value, str),
        "layer": isinstance(value, (Layer, OpRef, DefRef)),
        "shape": isinstance(value, list),
        "tensor": isinstance(value, TensorVal) or (isinstance(value, (int, float)) and not isinstance(value, bool)),
    }[typ]
    if not ok:
        raise TypeCheckError(f"argument `{name}` of `{owner}` must be {typ}, found {describe(value)}",
                             span, code="E326")


def bind_args(owner, attrs, pos, kw, span, kw_spans, symbolic: bool = False) -> dict:
    names = [a.name for a in attrs]
    if len(pos) > len(attrs):
        raise TypeCheckError(f"`{owner}` takes {len(attrs)} arguments, {len(pos)} given", span, code="E322",
                             help=f"its arguments are: {', '.join(names) or 'none'}")
    out, spans = {}, {}
    for a, (v, s) in zip(attrs, pos):
        out[a.name], spans[a.name] = v, s
    for k, v in kw.items():
        if k not in names:
            guess = closest(k, names)
            raise TypeCheckError(f"`{owner}` has no argument `{k}`", kw_spans.get(k, span), code="E323",
                                 help=f"did you mean `{guess}`?" if guess else
                                 f"its arguments are: {', '.join(names) or 'none'}")
        if k in out:
            raise TypeCheckError(f"argument `{k}` given twice", kw_spans.get(k, span), code="E319")
        out[k], spans[k] = v, kw_spans.get(k, span)
    from ..ops.registry import REQUIRED
    for a in attrs:
        if a.name not in out:
            if a.default is REQUIRED:
                raise TypeCheckError(f"`{owner}` needs argument `{a.name}`", span, code="E324")
            out[a.name] = a.default
            continue
        out[a.name] = coerce_attr(owner, a, out[a.name], spans.get(a.name, span), symbolic)
    return out


def coerce_attr(owner, a, v, span, symbolic: bool = False):
    """The argument's type first (a float 3.0 for an int is 3), then its declared range and form
    (registry.Attr.check): every diagnostic says what the argument accepts. With `symbolic`
    (checking a definition without its static arguments' values), a size known only by name
    enters the shape rule as a symbolic dimension."""
    from ..ops.registry import ArgError
    if isinstance(v, Opaque):
        raise NeedsConcrete(f"`{a.name}` of `{owner}` without a value for `{v.name}`", span)
    if symbolic and a.type in ("int", "ints"):
        if isinstance(v, Sym):
            return SymDim(v.expr)
        if a.type == "ints" and isinstance(v, list) and any(isinstance(x, Sym) for x in v):
            return tuple(SymDim(x.expr) if isinstance(x, Sym) else x for x in v)
    given = v
    v = _coerce_type(owner, a, v, span)
    try:
        return a.check(v)
    except ArgError as e:
        raise TypeCheckError(f"argument `{a.name}` of `{owner}` must be {e}, found {shown_arg(given)}",
                             span, code="E326") from None


def shown_arg(v, room: int = 60) -> str:
    """An argument's value for a message: lists written out (shortened), huge integers by their
    number of digits (writing 10**5000 out is slow, long and refused by Python)."""
    def text(x):
        if isinstance(x, int) and not isinstance(x, bool) and abs(x) >= 10**15:
            digits = len(str(abs(x))) if x.bit_length() < 14000 else int(x.bit_length() * 0.30103) + 1
            return f"<a {digits}-digit number>"
        if isinstance(x, (list, tuple)):
            return "[" + ", ".join(text(y) for y in x) + "]"
        if isinstance(x, bool):
            return "true" if x else "false"
        if isinstance(x, str):
            return f'"{x}"'
        return str(x) if isinstance(x, (int, float)) else describe(x)
    if isinstance(v, (list, tuple)):
        t = text(v)
        return "the list " + (t if len(t) <= room else t[:room - 4] + " ...]")
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10**15:
        return text(v).strip("<>")
    return describe(v)


def _coerce_type(owner, a, v, span):
    def bad():
        return TypeCheckError(f"argument `{a.name}` of `{owner}` must be {a.accepts()}, "
                              f"found {shown_arg(v)}", span, code="E326")
    if a.type == "int":
        if isinstance(v, Sym):
            raise NeedsConcrete(f"`{a.name}` from a symbolic dimension", span)
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                return bounds.check(int(v), span, f"argument `{a.name}` of `{owner}`")
            raise bad()
    elif a.type == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            if v is None and a.default is None:
                return v
            raise bad()
        return float(v)
    elif a.type == "bool":
        if not isinstance(v, bool):
            raise bad()
    elif a.type == "str":
        if not isinstance(v, str):
            raise bad()
    elif a.type == "ints":
        if v is None and a.default is None:
            return v
        if isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return tuple(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise bad()
    elif a.type == "floats":
        if v is None and a.default is None:
            return v
        vals = v if isinstance(v, list) else [v]
        if not vals or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals):
            raise bad()
        return tuple(float(x) for x in v) if isinstance(v, list) else float(v)
    elif a.type in ("any", "padding"):
        if not _is_static(v):
            raise TypeCheckError(f"argument `{a.name}` of `{owner}` must be a static value, found {describe(v)}",
                                 span, code="E326")
    elif a.type == "shape":
        if isinstance(v, (int,)) and not isinstance(v, bool):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, (int, Sym)) and not isinstance(x, bool) for x in v):
            raise bad()
        return tuple(x.expr if isinstance(x, Sym) else x for x in v)
    return v


def _has_symbolic(attrs: dict) -> bool:
    return any(isinstance(v, SymDim) or isinstance(v, tuple) and any(isinstance(x, SymDim) for x in v)
               for v in attrs.values())


def _symbolic_names(attrs: dict) -> list:
    out = []
    for v in attrs.values():
        for x in (v if isinstance(v, tuple) else (v,)):
            if isinstance(x, SymDim) and str(x) not in out:
                out.append(str(x))
    return out


def _is_static(v) -> bool:
    if v is None or isinstance(v, (bool, int, float, str, Sym)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_is_static(x) for x in v)
    return False


# Forms that are not ops: they take layers or expressions, not tensors. Filled in by apply.py.
SPECIAL: dict = {}
