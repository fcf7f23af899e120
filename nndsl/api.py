"""The Python face of nndsl: load a program, bind a model, init and apply it, train it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp

from . import build as _build
from .errors import ErrorGroup, NndslError
from .frontend import Program as _Defs
from .frontend import load_file, load_text
from .ir.graph import Graph
from .ir.types import TensorType
from .lower import interpret
from .values import NeedsConcrete


def _type_of(x) -> TensorType:
    """Concrete sizes stay ints; a symbolic size (jax.export's `b`) becomes a symbolic dim."""
    return TensorType(tuple(int(d) if isinstance(d, int) or hasattr(d, "__index__") and _static(d) else str(d)
                            for d in jnp.shape(x)), str(jnp.result_type(x)))


def _static(d) -> bool:
    try:
        int(d)
        return True
    except Exception:  # a symbolic dimension cannot be made an int
        return False


class Model:
    """A model with its static arguments bound. `init` and `apply` are pure functions of arrays."""

    def __init__(self, program: "Program", name: str, args: dict):
        self.program, self.name, self.args = program, name, dict(args)
        self._graphs: dict = {}
        self._optimized: dict = {}
        try:
            self.graph()  # check now: errors surface when the model is asked for, not at first call
        except NeedsConcrete:
            pass  # its structure depends on input sizes: decided at init/apply

    def graph(self, input_types: tuple | None = None) -> Graph:
        """The graph as built and checked (no passes): parameters, shapes, spans."""
        key = tuple(input_types) if input_types is not None else None
        if key not in self._graphs:
            self._graphs[key] = _build.build_model(self.program.defs, self.name, self.args,
                                                   list(input_types) if input_types else None)
        return self._graphs[key]

    def optimized_graph(self, input_types: tuple, train: bool = False) -> Graph:
        """The graph `apply` runs: the built graph after the program's passes."""
        from .passes import optimize
        key = (tuple(input_types), train)
        if key not in self._optimized:
            import copy
            g = copy.deepcopy(self.graph(input_types)) if self.program.opt_level or self.program.passes else \
                self.graph(input_types)
            self._optimized[key] = optimize(g, self.program.opt_level, self.program.passes, train)
        return self._optimized[key]

    @property
    def input_names(self) -> list[str]:
        from .syntax import ast
        defn = self.program.defs.definitions[self.name]
        return [s.name for s in defn.body if isinstance(s, ast.Input)]

    def _graph_for(self, inputs) -> Graph:
        want = len(self.input_names)
        if len(inputs) != want:
            raise TypeError(f"{self.name} takes {want} input{'s' if want != 1 else ''} "
                            f"({', '.join(self.input_names)}), given {len(inputs)}")
        return self.graph(tuple(_type_of(x) for x in inputs))

    def init(self, key, *inputs) -> dict:
        """Fresh variables {"params", "state"}; each layer's key derives from its stable name."""
        g = self._graph_for(inputs)
        from .limits import check_graph
        check_graph(g, self.program.max_memory, f"model `{self.name}`")
        kp, ks = jax.random.split(key)
        return {"params": interpret.init_tree(g.params, kp), "state": interpret.init_tree(g.state, ks)}

    def apply(self, variables, *inputs, train: bool = False, rngs=None):
        """Outputs (one array, or a dict by output name). With train=True: (outputs, new_state)."""
        g = self._graph_for(inputs)
        xs = [jnp.asarray(x, g.node(i).type.dtype) for x, i in zip(inputs, g.inputs)]
        g = self.optimized_graph(tuple(_type_of(x) for x in inputs), train)
        rng = rngs.get("dropout") if isinstance(rngs, dict) else rngs
        state = variables.get("state", {})
        new_state: dict = {}
        env = interpret.run(g, variables.get("params", {}), state, xs, train=train, rng=rng,
                            targets=list(g.outputs.values()), new_state=new_state)
        outs = {k: env[v] for k, v in g.outputs.items()}
        result = next(iter(outs.values())) if len(outs) == 1 else outs
        if train:
            return result, interpret.merge(state, new_state)
        return result

    def param_count(self, input_types=None) -> int:
        g = self.graph(input_types)
        return sum(s.size() or 0 for s in g.params.values())


class Program:
    """A loaded `.nn` file with everything it imports, and the optimization its models get."""

    def __init__(self, defs: _Defs, opt_level: int = 1, passes: list[str] | None = None):
        self.defs = defs
        self.opt_level = opt_level
        self.passes = passes
        self.max_memory: int | None = None  # bytes; None = this machine's memory

    def model(self, name: str, **args) -> Model:
        return Model(self, name, args)

    @property
    def xla_options(self) -> dict:
        """The XLA compiler options this program's optimization level chose for JAX's default
        platform (nndsl/lower/backend.py); the trainer uses them, and code that jits `apply`
        itself can too: `jax.jit(f, compiler_options=program.xla_options)`."""
        from .lower.backend import xla_options
        return xla_options(self.opt_level)

    def trainer(self, name: str | None = None, **overrides):
        """The train block `name` (or the only one); overrides: epochs, iterations, seed,
        clip_norm, devices, precision ("f32", "bf16" or "f16")."""
        from .train.trainer import Trainer
        return Trainer(self, name, **overrides)

    @property
    def models(self) -> list[str]:
        return self.defs.models()

    @property
    def trains(self) -> list[str]:
        return self.defs.trains()


def load(path: str | Path, import_root: str | Path | None = None, opt_level: int = 1,
         passes: list[str] | None = None) -> Program:
    return Program(load_file(path, import_root), opt_level, passes)


def loads(text: str, name: str = "<string>", base: str | Path | None = None, opt_level: int = 1,
          passes: list[str] | None = None) -> Program:
    return Program(load_text(text, name, base), opt_level, passes)


def check_program(program: Program) -> list:
    """Elaborates every model (with its defaults), cell and train block; returns every error found.

    A model whose arguments have no defaults, or whose structure depends on a dimension only a
    caller knows, is checked where it is used instead.
    """
    from .build.train import build_train
    from .syntax import ast
    from .values import NeedsConcrete

    errors: list = []
    for name, d in program.defs.definitions.items():
        if _imported(d, program):
            continue  # an imported definition is checked where this file uses it
        try:
            if isinstance(d, ast.TrainDef):
                build_train(program.defs, name, None, _entry_dir(program))
            elif all(p.default is not None for p in d.params):
                from .limits import check_graph
                check_graph(_build.build_model(program.defs, name, {}), program.max_memory, f"model `{name}`")
        except NeedsConcrete:
            continue
        except ErrorGroup as e:
            errors.extend(e.errors)
        except NndslError as e:
            errors.append(e)
    seen, unique = set(), []
    for e in errors:  # a model used in several places reports its mistake once
        key = tuple((d.message, d.span.line if d.span else 0, d.span.col if d.span else 0,
                     d.span.source.name if d.span else "") for d in e.diagnostics)
        if key not in seen:
            seen.add(key)
            unique.append(e)
    return unique


def _imported(d, program: Program) -> bool:
    name = d.span.source.name if d.span is not None else None
    return name is not None and name != program.defs.entry


def _entry_dir(program: Program):
    return program.defs.base
