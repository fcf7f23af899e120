"""nndsl: a declarative language for neural networks, compiled to JAX."""
from .api import Model, Program, load, loads
from .export import load_exported
from .errors import ErrorGroup, NndslError, ParseError, ShapeError

__all__ = ["ErrorGroup", "Model", "NndslError", "ParseError", "Program", "ShapeError", "load", "load_exported",
           "loads"]
__version__ = "0.1.0"
