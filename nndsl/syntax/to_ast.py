"""Lark tree to AST. Structure only: names, shapes and meaning are the builder's job.

A non-recursive transformer, so a 100,000-step chain or a 1,000-term sum cannot overflow the stack.
"""
from __future__ import annotations

import re

from lark import Token, Transformer_NonRecursive, v_args

from ..errors import ParseError
from ..source import Source, Span
from . import ast


def _num(text: str, span=None) -> int | float:
    from ..bounds import literal
    return literal(text, span)


@v_args(meta=True)
class ToAst(Transformer_NonRecursive):
    def __init__(self, source: Source):
        super().__init__()
        self.source = source

    def _s(self, meta) -> Span | None:
        return Span.from_meta(meta, self.source)

    def _tok(self, tok: Token) -> Span:
        return Span.from_token(tok, self.source)

    # ---- module
    def start(self, meta, items):
        return ast.Module(tuple(items), self._s(meta))

    def import_stmt(self, meta, ch):
        (tok,) = ch
        if tok.type == "STRING":
            return ast.Import(_unquote(tok, self), True, self._s(meta))
        return ast.Import(str(tok), False, self._s(meta))

    def _definition(self, kind, meta, ch):
        name, params, *body = ch
        return ast.ModelDef(kind, str(name), tuple(params or ()), tuple(body), self._s(meta),
                            self._tok(name))

    def model_def(self, meta, ch):
        return self._definition("model", meta, ch)

    def cell_def(self, meta, ch):
        return self._definition("cell", meta, ch)

    def train_def(self, meta, ch):
        name, *body = ch
        return ast.TrainDef(str(name), tuple(body), self._s(meta), self._tok(name))

    def param_list(self, meta, ch):
        return tuple(c for c in ch if c is not None)

    def arg_decl(self, meta, ch):
        name, typ, default = ch
        return ast.ArgDecl(str(name), str(typ) if typ is not None else None, default, self._s(meta))

    # ---- statements
    def input_stmt(self, meta, ch):
        return ast.Input(str(ch[0]), ch[1], self._s(meta))

    def state_stmt(self, meta, ch):
        return ast.State(str(ch[0]), ch[1], ch[2], self._s(meta))

    def param_stmt(self, meta, ch):
        return ast.Param(str(ch[0]), ch[1], ch[2], self._s(meta))

    def output_stmt(self, meta, ch):
        return ast.Output(str(ch[0]), ch[1], self._s(meta))

    def assign(self, meta, ch):
        *names, value = ch
        return ast.Assign(tuple(str(n) for n in names), value, self._s(meta))

    def type_expr(self, meta, ch):
        dtype, *dims = ch
        dims = tuple(d for d in dims if d is not None)
        return ast.TypeExpr(str(dtype) if dtype is not None else None, dims, self._s(meta))

    def data_stmt(self, meta, ch):
        return ast.Data(ch[0], self._s(meta))

    def instance_stmt(self, meta, ch):
        return ast.Instance(str(ch[0]), ch[1], self._s(meta))

    def loss_stmt(self, meta, ch):
        return ast.Loss(str(ch[0]), ch[1], self._s(meta))

    def metric_stmt(self, meta, ch):
        return ast.Metric(str(ch[0]), ch[1], self._s(meta))

    def step_stmt(self, meta, ch):
        *models, repeat, loss, opt = ch
        reps = _num(str(repeat), self._tok(repeat)) if repeat is not None else 1
        return ast.Step(tuple(str(m) for m in models), reps, loss, opt, self._s(meta),
                        tuple(self._tok(m) for m in models))

    def setting(self, meta, ch):
        return ast.Setting(str(ch[0]), ch[1], self._s(meta))

    def sample_stmt(self, meta, ch):
        return ast.Sample(ch[0], ch[1], self._s(meta))

    def draw(self, meta, ch):
        return ast.Draw(str(ch[0]), ch[1], self._s(meta))

    # ---- expressions
    def if_expr(self, meta, ch):
        return ast.If(ch[0], ch[1], ch[2], self._s(meta))

    def chain(self, meta, ch):
        return ast.Chain(tuple(ch), self._s(meta))

    def logic_or(self, meta, ch):
        return ast.BoolOp("or", tuple(ch), self._s(meta))

    def logic_and(self, meta, ch):
        return ast.BoolOp("and", tuple(ch), self._s(meta))

    def not_expr(self, meta, ch):
        return ast.Unary("not", ch[0], self._s(meta))

    def comparison(self, meta, ch):
        return ast.Compare(ch[0], str(ch[1]), ch[2], self._s(meta))

    def _binops(self, meta, ch):
        return ast.BinOps(tuple(ch[0::2]), tuple(str(t) for t in ch[1::2]), self._s(meta))

    arith = _binops
    term = _binops

    def neg(self, meta, ch):
        return ast.Unary("-", ch[0], self._s(meta))

    def pos(self, meta, ch):
        return ast.Unary("+", ch[0], self._s(meta))

    def power(self, meta, ch):
        return ast.Power(ch[0], ch[1], self._s(meta))

    def call(self, meta, ch):
        func, args = ch
        return ast.Call(func, tuple(args or ()), self._s(meta))

    def args(self, meta, ch):
        return tuple(c for c in ch if c is not None)

    def kwarg(self, meta, ch):
        return ast.Kwarg(str(ch[0]), ch[1], self._s(meta))

    def attr(self, meta, ch):
        return ast.Attr(ch[0], str(ch[1]), self._s(meta))

    def index(self, meta, ch):
        return ast.Index(ch[0], ch[1], self._s(meta))

    def name(self, meta, ch):
        return ast.Name(str(ch[0]), self._tok(ch[0]))

    def number(self, meta, ch):
        return ast.Number(_num(str(ch[0]), self._tok(ch[0])), str(ch[0]), self._tok(ch[0]))

    def string(self, meta, ch):
        return ast.String(_unquote(ch[0], self), self._tok(ch[0]))

    def true(self, meta, ch):
        return ast.Bool(True, self._s(meta))

    def false(self, meta, ch):
        return ast.Bool(False, self._s(meta))

    def paren(self, meta, ch):
        return ast.Paren(ch[0], self._s(meta))

    def list_expr(self, meta, ch):
        return ast.ListExpr(tuple(c for c in ch if c is not None), self._s(meta))


_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.S)
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", '"': '"', "\\": "\\"}


def unescape(body: str) -> str:
    """The value of a string literal's body: `\\n \\t \\r \\0 \\" \\\\ \\xHH \\uHHHH \\UHHHHHHHH`.

    Raises ValueError(offset, message) for any other escape, so a Windows path written with
    single backslashes is an error rather than a string with a tab in it."""
    def sub(m: re.Match) -> str:
        e = m.group(1)
        if e in _SIMPLE:
            return _SIMPLE[e]
        if len(e) > 1:
            code = int(e[1:], 16)
            if code <= 0x10FFFF:
                return chr(code)
            raise ValueError(m.start(), f"escape `\\{e}` is beyond Unicode")
        raise ValueError(m.start(), f"unknown escape `\\{e}` in a string")
    return _ESCAPE.sub(sub, body) if "\\" in body else body


def _unquote(tok: Token, t: ToAst) -> str:
    try:
        return unescape(str(tok)[1:-1])
    except ValueError as e:
        offset, message = e.args
        col = tok.column + 1 + offset
        raise ParseError(message, Span(t.source, tok.line, col, tok.line, col + 2), code="E108",
                         help='write `\\\\` for a backslash; escapes are '
                              '\\n \\t \\r \\0 \\" \\\\ \\xHH \\uHHHH') from None
