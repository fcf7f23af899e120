"""Entry points: one output of a model, with only the inputs it reads.

A model that states both its training graph and its inference graph over the same bound instances
(`output logits = prev -> emb -> dec -> proj` and `output tokens = full(src, 0) -> unroll(dec, ...)`)
is trained as one instance, so its weights file serves both; `Reverser.tokens` names the decoding
graph, which reads `src` only. The parameters stay those of the whole model (the same
`<instance>.safetensors` loads), while the graph keeps just what the output needs.
"""
from __future__ import annotations

import copy

from .errors import NndslError, closest


def prune(g, output: str):
    """A copy of `g` computing only `output`, its inputs reduced to those the output reads."""
    out = copy.deepcopy(g)
    nid = out.outputs[output]
    live = out.ancestors([nid])
    for n in [n for n in out.node_ids() if n not in live]:
        out.erase(n)
    out.outputs = {output: nid}
    out.inputs = [i for i in out.inputs if i in live]
    return out


def split_name(name: str) -> tuple[str, str | None]:
    """`Reverser.tokens` -> ("Reverser", "tokens"); a plain model name has no entry."""
    model, dot, entry = name.partition(".")
    return (model, entry) if dot else (name, None)


def check_entry(model, entry: str) -> None:
    """A located error when `entry` is not one of the model's outputs."""
    from .syntax import ast
    defn = model.program.defs.definitions[model.name]
    outs = [s.name for s in defn.body if isinstance(s, ast.Output)]
    if entry not in outs:
        guess = closest(entry, outs)
        raise NndslError(f"model `{model.name}` has no output `{entry}` to run", defn.name_span, code="E670",
                         help=f"did you mean `{guess}`?" if guess else f"its outputs: {', '.join(outs)}")
