"""nndsl: a declarative language for neural networks, compiled to JAX."""
from .api import Model, Program, load, loads
from .errors import ErrorGroup, NndslError, ParseError, ShapeError
from .export import load_exported
from .onnx import export_onnx  # imports onnx only when called
from .torch_weights import convert_torch_weights

__all__ = ["ErrorGroup", "Model", "NndslError", "ParseError", "Program", "ShapeError", "convert_torch_weights",
           "export_onnx", "load", "load_exported", "loads"]
__version__ = "0.1.0"
