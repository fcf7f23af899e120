"""The generated parts of docs/language.md: the grammar, and the tables of ops, data sources,
optimizers and schedules, read from the code so that the reference cannot drift from it.

    python tests/syntax/docgen.py          # rewrites the generated sections in place

Each section sits between `<!-- generated:NAME -->` and `<!-- end:NAME -->`; everything else in the
file is written by hand. tests/syntax/test_docs.py fails when a section is out of date.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "language.md"

KIND_TITLES = {
    "layer": "Layers (usable after `->`, as `x -> f(args)` or `f(x, args)`)",
    "function": "Functions (called on tensors: `f(x, args)`; most also work after `->`)",
    "loss": "Losses (scalar: the mean over the batch)",
    "metric": "Metrics",
    "random": "Random tensors (fresh values each call; for `z ~ dist(...)` in train blocks)",
}
TYPE_WORDS = {"int": "int", "float": "float", "bool": "bool", "str": "str", "ints": "int or [ints]",
              "shape": "shape", "any": "any", "dtype": "dtype", "floats": "float or [floats]",
              "padding": "padding"}
# Shorter words where an op's own docstring is a paragraph.
SHORT = {
    "conv1d": "1-D convolution over [batch, time, channels]; kernel [window, in/groups, filters].",
    "conv2d": "2-D convolution over [batch, h, w, channels]; kernel [kh, kw, in/groups, filters].",
    "conv3d": "3-D convolution over [batch, d, h, w, channels]; kernel [kd, kh, kw, in/groups, filters].",
    "conv_transpose1d": "Transposed 1-D convolution (upsampling by `stride`), as Keras and PyTorch define it.",
    "conv_transpose2d": "Transposed 2-D convolution (upsampling by `stride`), as Keras and PyTorch define it.",
    "conv_transpose3d": "Transposed 3-D convolution (upsampling by `stride`), as Keras and PyTorch define it.",
    "perceptron": "Rosenblatt's criterion mean((step(s) - t) * s) on scores s and 0/1 targets t; "
                  "its gradient is the perceptron learning rule.",
    "reshape": "The shape of each example, without the batch axis unless it starts with the batch "
               "symbol (`reshape([batch, 7, 7, 64])`); one entry may be -1.",
    "batchnorm": "Normalizes over all but the last axis: batch statistics when training, running "
                 "statistics (state `mean`, `var`) otherwise; params `scale`, `bias`.",
}


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, float) and (abs(v) < 1e-3 or abs(v) >= 1e5) and v != 0:
        return f"{v:g}"
    return str(v)


def signature(attrs) -> str:
    """`units: int, bias: bool = true, stride: int or [ints]?` (`?`: optional, decided by the op)."""
    from nndsl.ops.registry import REQUIRED
    out = []
    for a in attrs:
        t = TYPE_WORDS.get(a.type, a.type)
        if a.default is REQUIRED:
            out.append(f"{a.name}: {t}")
        elif a.default is None:
            out.append(f"{a.name}: {t}?")
        else:
            out.append(f"{a.name}: {t} = {_value(a.default)}")
    return ", ".join(out)


def _first_sentence(doc: str) -> str:
    text = " ".join((doc or "").split())
    m = re.match(r"(.+?\.)(\s|$)", text)
    return (m.group(1) if m else text).replace("|", "\\|")


def _inputs(op) -> str:
    if op.variadic:
        return f"{op.inputs[0][1:]}..."
    return ", ".join(op.inputs) if op.inputs else "—"


def op_tables() -> str:
    from nndsl.ops import OPS
    import nndsl.elaborate  # noqa: F401  (registers everything the builder knows)
    out = []
    for kind, title in KIND_TITLES.items():
        names = sorted(n for n, op in OPS.items() if op.kind == kind)
        if not names:
            continue
        out += [f"#### {title}", "", "| op | tensor inputs | arguments | what it computes |", "|---|---|---|---|"]
        for n in names:
            op = OPS[n]
            desc = SHORT.get(n) or _first_sentence(type(op).__doc__)
            out.append(f"| `{n}` | {_inputs(op)} | {signature(op.attrs) or '—'} | {desc} |")
        out.append("")
    other = sorted(n for n, op in OPS.items() if op.kind not in KIND_TITLES and op.kind != "internal")
    if other:
        out += ["#### Other", ""] + [f"- `{n}` ({OPS[n].kind})" for n in other] + [""]
    return "\n".join(out).rstrip() + "\n"


def data_table() -> str:
    from nndsl.data.sources import SOURCES
    out = ["| source | arguments |", "|---|---|"]
    for name, (attrs, _) in SOURCES.items():
        out.append(f"| `{name}` | {signature(attrs)} |")
    return "\n".join(out) + "\n"


def optimizer_tables() -> str:
    from nndsl.train.optim import OPTIMIZERS, SCHEDULES
    out = ["| optimizer | arguments |", "|---|---|"]
    out += [f"| `{n}` | {signature(a).replace('lr: any', 'lr: float or schedule')} |" for n, a in OPTIMIZERS.items()]
    out += ["", "| schedule | arguments |", "|---|---|"]
    out += [f"| `{n}` | {signature(a)} |" for n, a in SCHEDULES.items()]
    return "\n".join(out) + "\n"


def grammar_block() -> str:
    from nndsl.resources import grammar_path
    return "```lark\n" + grammar_path().read_text().rstrip() + "\n```\n"


SECTIONS = {"grammar": grammar_block, "ops": op_tables, "data": data_table, "optimizers": optimizer_tables}


def section_pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- generated:{name} -->\n)(.*?)(<!-- end:{name} -->)", re.S)


def render(text: str) -> str:
    """`text` with every generated section replaced by its current contents."""
    for name, make in SECTIONS.items():
        pat = section_pattern(name)
        if not pat.search(text):
            raise ValueError(f"docs/language.md has no `<!-- generated:{name} -->` section")
        body = make()
        text = pat.sub(lambda m: m.group(1) + body + m.group(3), text)
    return text


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    DOC.write_text(render(DOC.read_text()))
    print(f"rewrote the generated sections of {DOC.relative_to(ROOT)}")
