"""All ops, registered on import. `OPS` maps the DSL spelling to its OpDef."""
from . import conv, elementwise, gan, generate, losses, nn, random, recurrent, sequence, shape, sharding  # noqa: F401,E501
from . import padding, resize  # noqa: F401
from . import augment  # noqa: F401  (data augmentation, issue 18)
from .registry import OPS, ApplyCtx, Attr, LowerCtx, OpDef, OpError, register

__all__ = ["OPS", "ApplyCtx", "Attr", "LowerCtx", "OpDef", "OpError", "register"]
