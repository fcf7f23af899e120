"""All ops, registered on import. `OPS` maps the DSL spelling to its OpDef."""
from . import (  # noqa: F401  # noqa: F401
    augment,
    conv,
    elementwise,
    gan,
    generate,
    losses,
    nn,
    padding,
    random,
    recurrent,
    resize,
    sequence,
    shape,
    sharding,
)
from .registry import OPS, ApplyCtx, Attr, LowerCtx, OpDef, OpError, register

__all__ = ["OPS", "ApplyCtx", "Attr", "LowerCtx", "OpDef", "OpError", "register"]
