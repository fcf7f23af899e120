"""The validation layer for op arguments (registry.Attr.check): every argument of the wrong type,
form or range is a located E326 that says what the argument accepts, at check time, and no
message carries Python's own exception text (issues 13, 14 and 16)."""
from __future__ import annotations

import math
import re

import jax
import numpy as np
import pytest

import nndsl
from nndsl.elaborate.builder import coerce_attr
from nndsl.ops import OPS
from nndsl.ops.registry import REQUIRED

PYTHON_TEXT = re.compile(r"unsupported operand|object|NoneType|Traceback|Error\b|'int'|'list'|'str'|"
                         r"'tuple'|unexpected keyword|subscriptable|division|index out of range|iterable")


def build(body: str, shape="[batch, 7, 6, 2]", dtype=""):
    src = f"model M {{\n  input x: {dtype}{shape}\n  output y = {body}\n}}\n"
    return nndsl.loads(src).model("M")


def error_of(body: str, **kw) -> str:
    with pytest.raises(nndsl.NndslError) as e:
        build(body, **kw)
    text = str(e.value)
    assert not PYTHON_TEXT.search(text), text
    assert "<string>:3:" in text, text  # located on the call's line
    return text


# ----------------------------------------------------------------------------- the reported cases
REPORTED = [
    # (layer call, what the message must say)
    ("x -> conv2d(4, 3, stride=0)", "argument `stride` of `conv2d` must be a positive integer"),
    ("x -> max_pool(0)", "argument `window` of `max_pool` must be a positive integer"),
    ("x -> conv2d(4, 3, groups=0)", "argument `groups` of `conv2d` must be a positive integer"),
    ("x -> conv2d(4, 3, dilation=0)", "argument `dilation` of `conv2d` must be a positive integer"),
    ("x -> conv2d(4, 3, stride=10**30)", "`10 ** 30` is too large"),  # refused as a number first (E410)
    ("x -> conv2d(4, 3, stride=2**40)", "each at most 2147483647, found the number 1,099,511,627,776"),
    ("x -> upsample([2, 2**31])", "each at most 2147483647, found the list [2, 2147483648]"),
    ("x -> upsample(0)", "argument `factor` of `upsample` must be a positive integer"),
    ("x -> conv2d(4, 3, padding=-1)", "argument `padding` of `conv2d` must be \"valid\", \"same\""),
    ("x -> conv2d(4, 3, padding=[[0, -2], [1, 1]])", "[before, after] pairs"),
    ("x -> conv2d(4, 3, padding=[[0, 2, 1], [1, 1]])", "[before, after] pairs"),
    ('x -> conv2d(4, 3, padding="full")', '"same_lower"'),
    ("x -> conv2d(4, 3, padding=1.5)", "a non-negative integer"),
    ("x -> conv2d(4, 3, padding=[1, 2, 3])", "padding needs 2 entries (one per spatial axis), got 3"),
    ("x -> conv2d(0, 3)", "argument `filters` of `conv2d` must be a positive integer"),
    ("x -> conv2d(4, [3, 0])", "argument `kernel` of `conv2d` must be a positive integer"),
    ("x -> conv2d(4, 3, stride=[1, 2, 3])", "stride needs 2 values (one per spatial axis)"),
    ("x -> conv_transpose2d(4, 3, output_padding=-1)", "`output_padding` of `conv_transpose2d` must be a non-negative"),
    ("x -> conv_transpose2d(4, 3, groups=0)", "`groups` of `conv_transpose2d` must be a positive integer"),
    ("x -> avg_pool(2, count_include_pad=1)", "must be true or false"),
    ("x -> max_pool(2, ceil_mode=\"yes\")", "must be true or false"),
    ("x -> max_pool(2, stride=-2)", "`stride` of `max_pool` must be a positive integer"),
    ('x -> pad(1, mode="symmetric")', 'one of "constant", "reflect", "edge", "wrap"'),
    ('x -> pad("same")', "argument `padding` of `pad` must be a non-negative integer"),
    ('x -> pad(6, mode="reflect")', 'pad mode "reflect" pads axis 2 of size 6 by at most 5'),
    ("x -> groupnorm(0)", "`groups` of `groupnorm` must be a positive integer"),
    ("x -> groupnorm(3)", "2 channels do not divide into 3 groups"),
    ("x -> layernorm(axes=[1])", "layernorm normalizes the last axes"),
    ("x -> dense(0)", "`units` of `dense` must be a positive integer"),
    ("x -> gelu(approximate=\"tanh\")", "`approximate` of `gelu` must be true or false"),
]


@pytest.mark.parametrize("body, says", REPORTED, ids=[r[0] for r in REPORTED])
def test_reported_argument_mistakes_are_located_diagnostics(body, says):
    text = error_of(body)
    assert says in text, text


def test_embed_negative_vocab():
    text = error_of("x -> embed(-1, 3)", shape="[batch, 3]", dtype="i32")
    assert "argument `vocab` of `embed` must be a positive integer" in text


def test_negative_padding_does_not_blame_the_kernel():
    text = error_of("x -> conv2d(4, 3, padding=[-1, 0])")
    assert "kernel" not in text and "does not fit" not in text, text


def test_pool_padding_beyond_the_window_is_refused():
    text = error_of("x -> max_pool(2, padding=[2, 1])")
    assert "window 0 on spatial axis 0 sees only padding" in text, text


def test_asymmetric_padding_that_leaves_nothing_names_the_padding():
    text = error_of("x -> conv2d(4, 9, padding=[[0, 1], [0, 0]])")
    assert "kernel 9 does not fit input size 7 padded by 0 + 1" in text, text


# ----------------------------------------------------------------------------- every argument
HOSTILE = [0, -1, 10**30, 1.5, math.nan, "x", True, [], [[1]], [1, [2]], [[0, -1]], [[1, 2, 3]], None]


def _attrs():
    for name, op in sorted(OPS.items()):
        if op.kind == "internal":
            continue
        for a in op.attrs:
            if a.type not in ("any",):
                yield name, a


@pytest.mark.parametrize("op, attr", list(_attrs()), ids=[f"{n}.{a.name}" for n, a in _attrs()])
def test_every_argument_accepts_or_says_what_it_accepts(op, attr):
    """Each hostile value is either accepted as the declared kind, or an E326 naming what is."""
    for v in HOSTILE:
        try:
            got = coerce_attr(op, attr, v, None)
        except nndsl.NndslError as e:
            text = str(e)
            assert "E326" in text and f"argument `{attr.name}` of `{op}` must be" in text, text
            assert not PYTHON_TEXT.search(text.split(", found")[0]), text
            continue
        if attr.lo is not None and isinstance(got, int) and not isinstance(got, bool):
            assert attr.lo <= got and (attr.hi is None or got <= attr.hi), (op, attr, v)


WINDOWED = ["conv2d(4, 3, {k}={v})", "conv_transpose2d(4, 3, {k}={v})", "max_pool(2, {k}={v})",
            "avg_pool(2, {k}={v})", "upsample({k}={v})", "pad(1, {k}={v})"]
SOURCE_VALUES = ["0", "-1", "10**30", "1.5", '"x"', "true", "[]", "[[1]]", "[1, [2]]", "[[0, -1]]",
                 "[[1, 2, 3]]", "[0, 1]", "[2, 1]", "[[1, 0], [0, 2]]", '"same"', '"same_lower"', '"valid"']


def _windowed():
    for call in WINDOWED:
        op = call.split("(")[0]
        for a in OPS[op].attrs:
            if a.default is not REQUIRED and a.type != "bool":
                yield call, a.name


@pytest.mark.parametrize("call, key", list(_windowed()), ids=[f"{c.split('(')[0]}.{k}" for c, k in _windowed()])
def test_windowed_layers_check_or_run(call, key):
    """Whatever `check` accepts runs (no crash in training for a checked program); whatever it
    refuses is a located diagnostic without Python text."""
    x = np.random.default_rng(0).normal(size=(2, 7, 6, 2)).astype(np.float32)
    for v in SOURCE_VALUES:
        body = "x -> " + call.format(k=key, v=v)
        try:
            net = build(body)
        except nndsl.NndslError as e:
            text = str(e)
            assert not PYTHON_TEXT.search(text), text
            continue
        variables = net.init(jax.random.key(0), x)
        y = np.asarray(net.apply(variables, x))
        assert y.size > 0 and np.isfinite(y).all(), body


# ----------------------------------------------------------------------------- initializers
INITS = [("normal(0.1, foo=1)", "E323", "`normal` has no argument `foo`"),
         ('normal("a")', "E326", "argument `std` of `normal` must be a number >= 0"),
         ("normal(-1)", "E326", "argument `std` of `normal` must be a number >= 0"),
         ("constant()", "E324", "`constant` needs argument `value`"),
         ("uniform(1, 2, 3)", "E322", "`uniform` takes 2 arguments, 3 given")]


@pytest.mark.parametrize("init, code, says", INITS, ids=[i[0] for i in INITS])
def test_initializer_arguments_are_declared_like_op_arguments(init, code, says):
    src = f"model M {{\n  input x: [batch, 3]\n  param w: [3, 2] ~ {init}\n  output y = x @ w\n}}\n"
    with pytest.raises(nndsl.NndslError) as e:
        nndsl.loads(src).model("M")
    text = str(e.value)
    assert code in text and says in text and not PYTHON_TEXT.search(text), text


def test_nan_float_argument_is_refused():
    # static arithmetic can no longer make a NaN (an infinite literal is refused first, E410);
    # a NaN given from Python is refused by the argument's own check
    text = error_of("x -> leaky_relu(alpha=1e999 - 1e999)", shape="[batch, 3]")
    assert "the number 1e999 is too large" in text, text
    from nndsl.ops.registry import OPS, ArgError
    alpha = next(a for a in OPS["leaky_relu"].attrs if a.name == "alpha")
    with pytest.raises(ArgError):
        alpha.check(float("nan"))
