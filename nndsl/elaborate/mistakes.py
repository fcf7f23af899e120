"""Warnings for train blocks that check but are probably not meant: the shapes agree, the
numbers will not. They never change the exit code of `nndsl check`.

- W012: `cross_entropy` of a `softmax`. It takes logits and applies softmax itself, so the model
  trains on softmax(softmax(z)), whose gradient all but vanishes.
- W013: a GAN whose losses look swapped: the generator minimizes the discriminator's loss (the
  same loss as the discriminator's step, or a loss in which the discriminator never sees real
  data while the discriminator's step minimizes one in which it does).
"""
from __future__ import annotations

from ..errors import Diagnostic
from ..ops.registry import OPS


def train_warnings(spec) -> list[Diagnostic]:
    return _softmax_into_cross_entropy(spec.graph) + _swapped_gan_losses(spec)


def _softmax_into_cross_entropy(g) -> list[Diagnostic]:
    out = []
    for n in g.nodes():
        if n.op != "cross_entropy":
            continue
        ins = g.input_ids(n.id)
        if not ins:
            continue
        src = g.node(ins[0])
        while src.op in OPS and OPS[src.op].moves_values and g.input_ids(src.id):
            src = g.node(g.input_ids(src.id)[0])
        if src.op == "softmax":
            out.append(Diagnostic("`cross_entropy` expects logits, but it is given the output of `softmax`",
                                  n.span, "W012", "warning",
                                  notes=[(src.span, "the softmax is here")] if src.span else [],
                                  help="drop the `softmax` before the loss (cross_entropy applies it), and apply "
                                       "it only where probabilities are reported"))
    return out


def _models_of(g, nodes) -> set:
    return {g.node(n).path[0] for n in nodes if g.node(n).path}


def _swapped_gan_losses(spec) -> list[Diagnostic]:
    g = spec.graph
    if len(spec.steps) < 2:
        return []
    by_model: dict = {}
    for n in g.nodes():
        if n.path and n.path[0] in spec.instances:
            by_model.setdefault(n.path[0], set()).add(n.id)
    # generator -> discriminator: a trained model whose output feeds another trained model
    feeds: set = set()
    for m, nodes in by_model.items():
        reach = set()
        for nid in nodes:
            reach |= g.descendants(nid)
        for other, onodes in by_model.items():
            if other != m and reach & onodes:
                feeds.add((m, other))
    gens = {a for a, b in feeds if (b, a) not in feeds}
    discs = {b for a, b in feeds if (b, a) not in feeds}
    disc_nodes = set().union(*(by_model.get(m, set()) for m in discs)) if discs else set()
    real = _seen_on_real_data(g, spec, by_model, gens) & disc_nodes
    out = []
    for st in spec.steps:
        mine = set(st.models)
        if not mine & gens or mine & discs:
            continue
        for other in spec.steps:
            if other is st or not set(other.models) & discs:
                continue
            if other.loss == st.loss:
                out.append(_swap(st, f"`{', '.join(st.models)}` (the generator) minimizes `{st.loss}`, the same "
                                     f"loss as `{', '.join(other.models)}` (the discriminator)"))
                break
            if _anc(g, st.loss_node) & real and not _anc(g, other.loss_node) & real:
                # D's step never shows D real data, G's does: the losses are the wrong way round
                out.append(_swap(st, f"`{', '.join(st.models)}` (the generator) minimizes `{st.loss}`, in which the "
                                     f"discriminator judges real data, while `{', '.join(other.models)}` minimizes "
                                     f"`{other.loss}`, in which it never does"))
                break
    return out


def _anc(g, nid) -> set:
    return g.ancestors([nid])


def _seen_on_real_data(g, spec, by_model, gens) -> set:
    """Discriminator nodes reached from the data without passing through a generator."""
    gen_nodes = set().union(*(by_model.get(m, set()) for m in gens)) if gens else set()
    seen, stack = set(), list(spec.data_inputs.values())
    while stack:
        nid = stack.pop()
        if nid in seen or nid in gen_nodes:
            continue
        seen.add(nid)
        stack.extend(g.users(nid))
    return seen


def _swap(st, what: str) -> Diagnostic:
    return Diagnostic(f"the GAN's losses look swapped: {what}", st.span, "W013", "warning",
                      help="the generator should minimize its own loss (the discriminator calling its output "
                           "real), the discriminator the loss that tells real from generated")
