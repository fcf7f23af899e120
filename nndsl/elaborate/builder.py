"""The elaborator's state (class Builder) and its graph helpers: elaboration turns an AST into a
graph, resolving names, evaluating static values, applying layers and inferring shapes.

Elaboration is specialised to the input types it is given: symbolic for `nndsl check` and
`--emit graph`, concrete (every dimension an int) for `init`/`apply`. Every node gets the span of
the text that made it, so every error can point at the text.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

from ..errors import LimitError, NndslError, ShapeError, TypeCheckError, UnsupportedError
from ..ir.graph import Graph, stable_hash  # noqa: F401  (re-exported)
from ..ir.types import shape_str
from ..ops import OPS, OpError
from ..values import NeedsConcrete, Opaque, Poison, Poisoned, SymDim, TensorVal, TupleVal, describe
from . import order as ordering
from .args import TYPE_NAMES, bind_args, check_arg_type, coerce_attr, shown_arg  # noqa: F401  (re-exported)
from .special import SPECIAL  # noqa: F401  (re-exported)

MAX_NODES = 200_000
MAX_DEPTH = 64
# Elaboration steps (expressions evaluated, layers applied) for one program: a model that uses
# itself twice per level doubles its work per level while its graph stays small (identical
# pure nodes are shared), so the node limit alone never fires. The examples and the standard
# library need at most a few thousand; this is ~17x ResNet-50 and is spent in about a second.
# Each Builder adds two steps per character of the program's text (see Builder.budget).
MAX_WORK = 100_000


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
    parent: Env | None = None

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
    """The state of one elaboration: the graph being built (and the scan body being built inside
    it), the scope that names parameters, the models being elaborated, the work budget and the
    diagnostics. What each expression, statement, layer and special form does lives in
    exprs.py, calls.py, statements.py, apply.py, cells.py and special.py; they all take a Builder."""

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

    @contextmanager
    def inside(self, name: str, path: tuple, span):
        """Elaborates the body of model `name` used at `span`: under its own scope, and on the
        stack of models being elaborated (which finds recursion and measures depth)."""
        saved = self.scope
        self.scope = Scope(path)
        self.stack.append((name, path))
        self.call_spans.append(span)
        try:
            yield
        finally:
            self.scope = saved
            self.stack.pop()
            self.call_spans.pop()

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
        except (TypeError, ValueError, KeyError, IndexError):
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

    # ------------------------------------------------------------------ entry points
    def eval(self, e, env: Env):
        """Evaluates one expression: EXPRS (filled by exprs.py and calls.py) says how, per AST class."""
        self.tick(e.span)
        method = EXPRS.get(type(e))
        if method is None:
            raise UnsupportedError(f"`{type(e).__name__}` is not an expression", e.span)
        return method(self, e, env)

    def apply(self, layer, inputs: list, span) -> object:
        from . import apply as A
        return A.apply_layer(self, layer, inputs, span)

    # ------------------------------------------------------------------ diagnostics
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


# How each kind of expression is evaluated: AST class -> fn(builder, expr, env). exprs.py and
# calls.py fill it with @expr (the package's __init__ imports them).
EXPRS: dict = {}


def expr(cls):
    """Registers the function it decorates as the evaluation of AST class `cls`."""
    def register(fn):
        EXPRS[cls] = fn
        return fn
    return register


def rename_in_source_order(b: Builder, scope: Scope) -> None:
    """Renumbers a scope's layers by their place in the text (only needed when equations were
    written out of order)."""
    renames = scope.source_order_renames()
    if not renames:
        return
    n = len(scope.path)

    def fix(path):
        if path is not None and len(path) > n and path[:n] == scope.path and path[n] in renames:
            return path[:n] + (renames[path[n]],) + path[n + 1:]
        return path
    for registry in (b.root.params, b.root.state):
        items = list(registry.items())
        registry.clear()
        registry.update({fix(k): v for k, v in items})
    graphs = [b.root]
    while graphs:
        g = graphs.pop()
        for node in g.nodes():
            node.path = fix(node.path)
            if node.label and node.path:
                node.label = node.path[-1]
            if node.op == "scan":
                graphs.append(node.attrs["body"])


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




def _has_symbolic(attrs: dict) -> bool:
    return any(isinstance(v, SymDim) or (isinstance(v, tuple) and any(isinstance(x, SymDim) for x in v))
               for v in attrs.values())


def _symbolic_names(attrs: dict) -> list:
    out = []
    for v in attrs.values():
        for x in (v if isinstance(v, tuple) else (v,)):
            if isinstance(x, SymDim) and str(x) not in out:
                out.append(str(x))
    return out
