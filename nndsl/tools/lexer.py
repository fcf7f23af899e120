"""A Pygments lexer for nndsl, for documentation (```nn blocks) and `pygmentize -l nndsl`.

Keywords in nndsl are contextual (`step` starts a statement, `step(x)` is the step function,
`data.x` is a field), so the lexer follows the same cues the grammar does: statement words count
as keywords at the start of a line, a name before `(` or after `->` is a layer or function, a
name before `.` is a value, the name after `model`, `cell` or `train` in a header is a
definition. Registered under the names `nndsl` and `nn` for `*.nn` files through the
`pygments.lexers` entry point.
"""
from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, include, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text, Whitespace

from ..syntax import words as language

__all__ = ["NndslLexer"]

NAME = r"[A-Za-z_][A-Za-z0-9_]*'*"
# from the grammar (nndsl/syntax/words.py), so a new keyword is coloured without touching this file
STATEMENT_WORDS = tuple(dict.fromkeys(language.definition_words() + language.statement_words()))
INLINE_WORDS = language.inline_words()
DTYPES = ("f32", "f16", "bf16", "f64", "i32", "i64", "i8", "u8", "bool")
ARG_TYPES = ("int", "dim", "float", "bool", "str", "string", "shape", "layer", "tensor", "any")
SPECIAL_FORMS = ("grad", "unroll", "bidirectional", "reverse", "last", "detach")


class NndslLexer(RegexLexer):
    """Lexer for nndsl neural-network definitions (`.nn`)."""

    name = "nndsl"
    aliases = ["nndsl", "nn"]
    filenames = ["*.nn"]
    mimetypes = ["text/x-nndsl"]
    url = "https://github.com/nndsl/nndsl"

    def __init__(self, **options):
        options.setdefault("stripnl", False)  # keep the text as it is: tokens join back to it
        super().__init__(**options)

    tokens = {
        "root": [
            # headers: `model Name(`, `cell Name {`, `train name {`
            (rf"\b(model|cell)(\s+)({NAME})(?=\s*[({{])", bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (rf"\b(train)(\s+)({NAME})(?=\s*\{{)", bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            # a statement word starts its line (and is not being assigned or read as a value)
            (rf"^([ \t\f\r]*)({'|'.join(STATEMENT_WORDS)})\b(?!')(?!\s*(=|,|\.|\())", bygroups(Whitespace, Keyword)),
            (rf"(\{{)([ \t\f\r]*)({'|'.join(STATEMENT_WORDS)})\b(?!')(?!\s*(=|,|\.|\())",
             bygroups(Punctuation, Whitespace, Keyword)),  # `train t { data ...` on one line
            (r"[ \t\f\r]+|\n", Whitespace),
            (r"#.*?$", Comment.Single),
            (rf"\b(import)(\s+)({NAME})\b", bygroups(Keyword.Namespace, Whitespace, Name.Namespace)),
            (r"\bimport\b", Keyword.Namespace),
            # `name: type` in parameter lists and `input x: f32[...]`
            (rf"(:)(\s*)({'|'.join(ARG_TYPES)})\b(?!\s*[\[(.])", bygroups(Punctuation, Whitespace, Keyword.Type)),
            (rf"\b({'|'.join(DTYPES)})(?=\[)", Keyword.Type),
            (words(("and", "or", "not"), suffix=r"\b"), Operator.Word),
            (words(("true", "false"), suffix=r"\b"), Keyword.Constant),
            (words(INLINE_WORDS, suffix=r"\b"), Keyword),
            # a layer or function: called, or after `->`
            (rf"(->)(\s*)({'|'.join(SPECIAL_FORMS)})\b(?!')", bygroups(Operator, Whitespace, Name.Builtin)),
            (rf"(->)(\s*)({NAME})", bygroups(Operator, Whitespace, Name.Function)),
            (rf"\b({'|'.join(SPECIAL_FORMS)})\b(?!')(?=\s*\()", Name.Builtin),
            (rf"{NAME}(?=\s*\()", Name.Function),
            (rf"{NAME}(?=\s*\.[A-Za-z_])", Name),  # `data.x`: a value, even if it is a keyword
            (rf"(\.)({NAME})", bygroups(Punctuation, Name.Attribute)),
            (NAME, Name),
            include("numbers"),
            (r'"', String.Double, "string"),
            (r"->|\*\*|==|!=|<=|>=|[-+*/@<>=~]", Operator),
            (r"[()\[\]{},:.]", Punctuation),
        ],
        "numbers": [
            (r"([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+", Number.Float),
            (r"[0-9]+", Number.Integer),
        ],
        "string": [
            (r'\\(x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|[nrt0"\\])', String.Escape),
            (r'[^"\\\n]+', String.Double),
            (r'"', String.Double, "#pop"),
            (r"\\.", String.Double),  # an unknown escape: the checker reports it (E108)
            (r"\n", Text, "#pop"),  # an unclosed string ends with its line, as in the parser
        ],
    }
