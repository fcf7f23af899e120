"""`unroll` with feedback: a cell (or a bound cell instance, with its trained weights) run on its
own outputs for n steps, each step's input computed from the previous step's output.

    tokens = start -> unroll(dec, steps=n, emit=proj -> argmax, feed=emb)

reads x_0 = feed(start), y_t = emit(cell(x_t)), x_{t+1} = feed(y_t) and yields [y_1 .. y_n].
`emit` and `feed` are layers (default: identity), elaborated inside the step, so a bound layer
used there is the same instance, with the same parameters, as where it is applied outside. With
`beam=k`, `emit` gives the logits and the search chooses the tokens. The step is one sub-graph,
lowered to one `lax.scan` (`Generate.lower` in nndsl/ops/generate.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ShapeError, TypeCheckError
from ..ir.graph import Graph
from ..ir.types import TensorType, dims_equal
from ..syntax import ast
from ..values import BoundLayer, Layer, ModelLayer, Poison, Poisoned, Sym, TensorVal, describe
from .apply import LAYER_APPLIERS
from .builder import Builder, Env, Scope
from .cells import captured_env, check_states, initial_state, state_inputs
from .decls import dtype_of, eval_dims
from .exprs import as_layer, is_layer
from .statements import run_body

FEEDBACK_KW = ("emit", "feed", "until", "beam", "length_penalty")


@dataclass
class GenerateLayer(Layer):
    cell: Layer
    steps: object  # int, or a symbolic dimension (`steps=time`)
    emit: Layer | None = None
    feed: Layer | None = None
    until: int | None = None
    beam: int = 0
    length_penalty: float = 0.0
    arg_spans: dict = field(default_factory=dict)  # where `emit=` and `feed=` were written


def _cell_of(layer, span):
    """The cell definition and the scope its parameters live under (a bound instance's own)."""
    if isinstance(layer, BoundLayer):
        inner, path = layer.layer, layer.scope + (layer.name,)
    else:
        inner, path = layer, None
    if not (isinstance(inner, ModelLayer) and inner.defn.kind == "cell"):
        raise TypeCheckError(f"unroll runs a cell, found {describe(inner)}", span, code="E337",
                             help="a cell (`LSTM(64)`) or a bound cell instance (`dec = LSTM(64)`)")
    return inner, path


def apply_generate(b: Builder, layer: GenerateLayer, inputs: list, span, path):
    cell, cpath = _cell_of(layer.cell, layer.span or span)
    cpath = cpath or path or b.scope.fresh("unroll", layer.span or span)
    defn = cell.defn
    decls = [s for s in defn.body if isinstance(s, ast.Input)]
    if len(inputs) != 1 or not isinstance(inputs[0], TensorVal) or len(decls) != 1:
        raise TypeCheckError(f"unroll starts from one tensor, given {len(inputs)} values", span, code="E328")
    (start,) = inputs
    try:
        built = _build_step(b, layer, cell, cpath, decls[0], start.type, span)
        prompt = False
    except (ShapeError, TypeCheckError) as first:
        # A start value with a time axis is a prompt: the cell reads it, then continues from its
        # last element (`chars -> unroll(rnn, ...)` continues the text `chars`).
        if start.type.rank < 2 or first.diagnostics[0].code not in ("E370", "E371"):
            raise
        step_t = start.type.with_shape(start.type.shape[:1] + start.type.shape[2:])
        try:
            built = _build_step(b, layer, cell, cpath, decls[0], step_t, span)
        except (ShapeError, TypeCheckError):
            raise first from None
        if start.type.shape[1] == 0:
            raise ShapeError("unroll cannot continue an empty prompt", span, code="E371") from None
        prompt = True
    body, emitted, states, inits, env = built
    init_vals = [initial_state(b, inits[n], states[n].type, cpath, env) for n in states]
    out_type = emitted.with_shape(emitted.shape[:1] + (_steps_dim(layer.steps),) + emitted.shape[1:])
    attrs = {"body": body, "states": tuple(states), "steps": _steps_value(layer.steps), "until": layer.until,
             "beam": layer.beam, "length_penalty": layer.length_penalty, "out_type": out_type,
             "prompt": prompt}
    return b.add_node("generate", [start] + init_vals, attrs, layer.span or span, path=cpath, label=cpath[-1])


def _build_step(b: Builder, layer, cell, cpath, decl, step_t: TensorType, span):
    """One step as a sub-graph: prev -> feed -> cell -> emit. On a mistake nothing it registered
    stays (the caller may try again with the start value read as a prompt)."""
    outer, saved_scope = b.g, b.scope
    marks = (dict(b.root.params), dict(b.root.state), dict(saved_scope.counters), list(saved_scope.made))
    body = Graph(params=b.root.params, state=b.root.state, counter=b.root.counter)
    b.g = body
    try:
        prev_node = body.add("input", [], {"name": "prev"}, step_t, span, label="prev")
        body.inputs.append(prev_node.id)
        x = _through(b, layer.feed, TensorVal(prev_node.id, step_t, span), span, "feed")
        _check_step_input(b, cell.defn, decl, x, layer, span)
        out, states, nexts, inits, env = _cell_step(b, cell, cpath, decl, x, span)
        y = _through(b, layer.emit, out, span, "emit")
        emitted = _check_emitted(step_t, y, layer, span)
        body.outputs = {"out": y.node, **{n: nexts[n].node for n in states}}
    except (ShapeError, TypeCheckError):
        for reg, mark in ((b.root.params, marks[0]), (b.root.state, marks[1])):
            reg.clear()
            reg.update(mark)
        saved_scope.counters.clear()
        saved_scope.counters.update(marks[2])
        saved_scope.made[:] = marks[3]
        raise
    finally:
        b.g = outer
    return body, emitted, states, inits, env


def _through(b, f, v, span, what):
    if f is None:
        return v
    out = b.apply(f, [v], _span_of(f, span))
    if not isinstance(out, TensorVal):
        raise TypeCheckError(f"`{what}` must give one tensor, found {describe(out)}", _span_of(f, span),
                             code="E370")
    return out


def _span_of(f, span):
    return getattr(f, "span", None) or span


def _check_step_input(b, defn, decl, x: TensorVal, layer, span):
    """The fed-back value must be what the cell reads: its rank, fixed sizes and kind of number."""
    where = layer.arg_spans.get("feed") or span
    want_rank = len(decl.type.dims)
    what = "the fed-back value (`feed` of the previous output)" if layer.feed is not None else \
        "the fed-back value (each output is the next input; give `feed=` to transform it)"
    want_float = dtype_of(decl.type).startswith(("float", "bfloat"))
    if want_float != x.type.is_float:
        raise TypeCheckError(f"cell `{defn.name}` reads {'floats' if want_float else 'integers'}, but {what} "
                             f"is {x.type}", where, code="E370",
                             help="tokens become vectors through a layer: `feed=emb` with `emb = embed(vocab, d)`"
                             if want_float else None,
                             notes=[(decl.type.span, "the cell's input is declared here")])
    if x.type.rank != want_rank:
        raise ShapeError(f"cell `{defn.name}` reads one step of rank {want_rank}, but {what} is {x.type}",
                         where, code="E370", notes=[(decl.type.span, "the cell's input is declared here")])


def _cell_step(b: Builder, cell: ModelLayer, cpath: tuple, decl, x: TensorVal, span):
    """The cell's body on step input x, under the cell's own scope (so its parameters are the ones
    the same instance has where it is scanned over a sequence)."""
    defn = cell.defn
    saved = b.scope
    b.scope = Scope(cpath)
    b.stack.append((defn.name, cpath))
    try:
        env = Env(dict(cell.args))
        eval_dims(b, decl.type, env, x.type, f"cell `{defn.name}` input `{decl.name}`", call_span=span)
        states, inits = state_inputs(b, defn, env)
        env_body = captured_env(cell.args)
        outputs = run_body(b, defn, env_body, [x], None, states)
        if any(isinstance(v, Poison) for v in list(outputs.values()) + list(env_body.values.values())):
            raise Poisoned(defn.name)
        nexts = check_states(defn, env_body, states)
        if len(outputs) != 1:
            raise TypeCheckError(f"cell `{defn.name}` must have exactly one output", defn.name_span, code="E338")
        (out,) = outputs.values()
        if not isinstance(out, TensorVal):
            raise TypeCheckError(f"the output of cell `{defn.name}` must be one tensor", defn.name_span,
                                 code="E338")
    finally:
        b.scope = saved
        b.stack.pop()
    return out, states, nexts, inits, env


def _check_emitted(start_t: TensorType, y: TensorVal, layer: GenerateLayer, span) -> TensorType:
    """What a step emits is carried to the next step, so it must look like the start value (with a
    beam, the emitted value is the logits and the carried one is the chosen token)."""
    where = layer.arg_spans.get("emit") or span
    if layer.beam:
        if start_t.rank != 1 or start_t.is_float:
            raise TypeCheckError(f"beam search starts from one token per sequence, i32[batch], found "
                                 f"{start_t}", span, code="E372")
        if y.type.rank != 2 or not y.type.is_float or not dims_equal(y.type.shape[0], start_t.shape[0]):
            raise ShapeError(f"with `beam`, `emit` gives the logits [batch, vocab], found {y.type}", where,
                             code="E372")
        return start_t
    same = len(y.type.shape) == len(start_t.shape) and all(
        dims_equal(p, q) for p, q in zip(y.type.shape, start_t.shape)) and y.type.dtype == start_t.dtype
    if not same:
        raise ShapeError(f"each step's output is the next step's start: unroll starts from {start_t} but "
                         f"emits {y.type}", where, code="E371",
                         help="make `emit` give what `feed` takes, e.g. `emit=proj -> argmax` for token ids")
    if layer.until is not None and (y.type.rank != 1 or y.type.is_float):
        raise TypeCheckError(f"`until` stops at a token, so each step must emit i32[batch], found {y.type}",
                             where, code="E373")
    return y.type


def _steps_dim(steps):
    return steps.expr if isinstance(steps, Sym) else steps


def _steps_value(steps):
    return steps.expr if isinstance(steps, Sym) else int(steps)


def _static_int(v, what, span, low=0):
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise TypeCheckError(f"unroll: `{what}` must be an integer of at least {low}, found {describe(v)}",
                             span, code="E339")
    return int(v)


def feedback_unroll(b: Builder, e, pos, kw):
    """`unroll(dec, steps=n, emit=..., feed=..., until=..., beam=...)` (special.py sends it here
    when the cell is a bound instance or any of those is given) as a GenerateLayer."""
    cell = pos[0][0]
    spans = {a.name: a.span for a in e.args if isinstance(a, ast.Kwarg)}
    unknown = [k for k in kw if k not in FEEDBACK_KW + ("steps",)]
    if unknown:
        from ..errors import closest
        guess = closest(unknown[0], FEEDBACK_KW + ("steps",))
        raise TypeCheckError(f"unroll has no argument `{unknown[0]}`", spans.get(unknown[0], e.span), code="E323",
                             help=f"did you mean `{guess}`?" if guess else None)
    if len(pos) > 2:
        raise TypeCheckError("unroll takes a cell and `steps=`; the rest are named (emit=, feed=, until=, beam=)",
                             pos[2][1], code="E339")
    steps = kw.get("steps", pos[1][0] if len(pos) > 1 else None)
    if not isinstance(steps, Sym):
        steps = _static_int(steps, "steps", spans.get("steps", e.span), low=1)
    layers = {}
    for k in ("emit", "feed"):
        v = kw.get(k)
        if v is not None:
            if not is_layer(v):
                raise TypeCheckError(f"unroll: `{k}` must be a layer (such as `proj -> argmax`), found "
                                     f"{describe(v)}", spans.get(k, e.span), code="E339")
            layers[k] = as_layer(b, v, spans.get(k, e.span))
    until = kw.get("until")
    if until is not None:
        until = _static_int(until, "until", spans.get("until", e.span))
    beam = _static_int(kw.get("beam", 0), "beam", spans.get("beam", e.span))
    lp = kw.get("length_penalty", 0.0)
    if isinstance(lp, bool) or not isinstance(lp, (int, float)) or lp < 0:
        raise TypeCheckError(f"unroll: `length_penalty` must be a number of at least 0, found {describe(lp)}",
                             spans.get("length_penalty", e.span), code="E339")
    if lp and not beam:
        raise TypeCheckError("unroll: `length_penalty` ranks the hypotheses of a beam search; give `beam=k`",
                             spans["length_penalty"], code="E339")
    g = GenerateLayer(cell, steps, layers.get("emit"), layers.get("feed"), until, beam, float(lp),
                      {k: spans[k] for k in layers}, span=e.span)
    return g


LAYER_APPLIERS[GenerateLayer] = apply_generate
