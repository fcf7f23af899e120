"""The Python face of nndsl: load a program, bind a model, init and apply it, train it."""
from __future__ import annotations

import copy
from pathlib import Path

import jax.numpy as jnp

from . import bounds
from . import elaborate as _build
from .data import paths
from .dims import fixed_types
from .elaborate.check import check_definitions
from .entry import check_entry, prune, split_name
from .errors import ImportFailure, NameResolutionError, NndslError, ShapeError, TypeCheckError
from .files import check_text
from .frontend import Program as _Defs
from .frontend import load_file, load_text
from .ir.graph import Graph
from .ir.types import TensorType
from .keys import checked_key
from .limits import check_graph
from .lower import backend, interpret
from .lower.interpret import get_path
from .passes import DEFAULT_LEVEL, optimize
from .syntax import ast
from .values import NeedsConcrete


def _type_of(x) -> TensorType:
    """Concrete sizes stay ints; a symbolic size (jax.export's `b`) becomes a symbolic dim."""
    return TensorType(tuple(int(d) if isinstance(d, int) or (hasattr(d, "__index__") and _static(d)) else str(d)
                            for d in jnp.shape(x)), str(jnp.result_type(x)))


def _input_type(x, name: str) -> TensorType:
    """The type of one input given from Python; anything that is not an array of numbers, or an
    array with an empty axis, is the caller's mistake, said as such."""
    if x is None or isinstance(x, (str, bytes, dict)):
        raise TypeCheckError(f"input `{name}` must be an array, found {type(x).__name__}", code="E303")
    try:
        t = _type_of(x)
    except (TypeError, ValueError) as e:
        raise TypeCheckError(f"input `{name}` must be an array of numbers ({type(x).__name__} is not)",
                             code="E303") from e
    if not jnp.issubdtype(jnp.dtype(t.dtype), jnp.number) and t.dtype != "bool":
        raise TypeCheckError(f"input `{name}` must be an array of numbers, found dtype {t.dtype}", code="E303")
    for d in t.shape:
        if isinstance(d, int) and d < 1:
            raise ShapeError(f"input `{name}` has shape {list(t.shape)}: every axis needs at least one "
                             "element (an empty batch has nothing to compute)", code="E303")
    return t


def check_variables(g: Graph, variables) -> None:
    """Every parameter and state the graph reads is present with its shape, so a missing or
    foreign weight is a named error instead of a KeyError or a shape failure deep inside XLA."""
    if not isinstance(variables, dict):
        raise TypeCheckError(f"variables must be the dict `init` returns, found {type(variables).__name__}",
                             code="E604")
    for kind, specs in (("params", g.params), ("state", g.state)):
        for path, spec in specs.items():
            try:
                arr = get_path(variables.get(kind, {}), path)
                shape = tuple(jnp.shape(arr))
            except (KeyError, TypeError, AttributeError, IndexError):
                raise NndslError(f"the variables have no {kind} `{'/'.join(path)}` (were they made for this "
                                 "model?)", code="E604") from None
            if shape != tuple(spec.shape):
                raise NndslError(f"variable `{'/'.join(path)}` has shape {list(shape)}, the model needs "
                                 f"{list(spec.shape)}", code="E605")


def _static(d) -> bool:
    try:
        int(d)
        return True
    except Exception:  # noqa: BLE001 - a symbolic dimension cannot be made an int
        return False


class Model:
    """A model with its static arguments bound. `init` and `apply` are pure functions of arrays."""

    def __init__(self, program: Program, name: str, args: dict, entry: str | None = None):
        self.program, self.name, self.args = program, name, dict(args)
        self.entry_name = entry  # one output run on its own (nndsl/entry.py), or None: all of them
        self.dims: dict = {}  # sizes given to symbolic dimensions (`--dim time=32`); see with_dims
        self._graphs: dict = {}
        self._optimized: dict = {}
        self._checked: set = set()
        try:
            self.graph()  # check now: errors surface when the model is asked for, not at first call
        except NeedsConcrete:
            pass  # its structure depends on input sizes: decided at init/apply

    def graph(self, input_types: tuple | None = None) -> Graph:
        """The graph as built and checked (no passes): parameters, shapes, spans."""
        if input_types is None and self.dims:
            input_types = fixed_types(self, self._without_dims())
        key = tuple(input_types) if input_types is not None else None
        if key not in self._graphs and self.entry_name is not None:
            self._graphs[key] = self._entry_graph(input_types)
        if key not in self._graphs:
            self._graphs[key] = _build.build_model(self.program.defs, self.name, self.args,
                                                   list(input_types) if input_types else None)
        return self._graphs[key]

    def optimized_graph(self, input_types: tuple, train: bool = False) -> Graph:
        """The graph `apply` runs: the built graph after the program's passes."""
        key = (tuple(input_types), train)
        if key not in self._optimized:
            g = copy.deepcopy(self.graph(input_types)) if self.program.opt_level or self.program.passes else \
                self.graph(input_types)
            self._optimized[key] = optimize(g, self.program.opt_level, self.program.passes, train)
        return self._optimized[key]

    @property
    def input_names(self) -> list[str]:
        names = self._declared_inputs()
        if self.entry_name is not None:
            return [n for n in names if n in self._entry_inputs()]
        return names

    def with_dims(self, **dims) -> Model:
        """The same model with some symbolic dimensions given sizes (`time=32`): its graph, summary
        and export then see them fixed, while the others (the batch, usually) stay symbolic."""
        m = Model(self.program, self.name, self.args, self.entry_name)
        m.dims = {**self.dims, **dims}
        if m.dims:
            m.graph()  # check now with the sizes given
        return m

    def _without_dims(self) -> Model:
        """This model with no sizes given, sharing its built graphs: what `dims.fixed_types` reads
        the declared input types from."""
        plain = Model.__new__(Model)
        plain.__dict__.update(self.__dict__, dims={}, _graphs=self._graphs, _optimized={})
        return plain

    def _declared_inputs(self) -> list[str]:
        defn = self.program.defs.definitions[self.name]
        return [s.name for s in defn.body if isinstance(s, ast.Input)]

    def entry(self, output: str) -> Model:
        """The model reduced to one output and the inputs it reads: a second entry point (a
        decoding graph beside the training one) over the same instances and weights."""
        return Model(self.program, self.name, self.args, entry=output)

    def _entry_inputs(self) -> set:
        full = Model.__new__(Model)
        full.__dict__.update(self.__dict__, entry_name=None)
        try:
            g = prune(full.graph(), self.entry_name)
        except NeedsConcrete:
            return set(self._declared_inputs())
        return {g.node(i).attrs["name"] for i in g.inputs}

    def _entry_graph(self, input_types):
        check_entry(self, self.entry_name)
        full_types = None
        if input_types is not None:
            given = dict(zip(self.input_names, input_types))
            full_types = [given.get(n) for n in self._declared_inputs()]
        g = _build.build_model(self.program.defs, self.name, self.args, full_types)
        return prune(g, self.entry_name)

    def _graph_for(self, inputs) -> Graph:
        want = len(self.input_names)
        if len(inputs) != want:
            raise TypeCheckError(f"{self.name} takes {want} input{'s' if want != 1 else ''} "
                                 f"({', '.join(self.input_names)}), given {len(inputs)}", code="E328")
        return self.graph(tuple(_input_type(x, n) for x, n in zip(inputs, self.input_names)))

    def init(self, key, *inputs) -> dict:
        """Fresh variables {"params", "state"}; each layer's key derives from its stable name."""
        g = self._graph_for(inputs)
        check_graph(g, self.program.max_memory, f"model `{self.name}`")
        return interpret.init_variables(g.params, g.state, checked_key(key))

    def apply(self, variables, *inputs, train: bool = False, rngs=None):
        """Outputs (one array, or a dict by output name). With train=True: (outputs, new_state)."""
        g = self._graph_for(inputs)
        if id(g) not in self._checked:  # activations at these input sizes, before anything runs
            check_graph(g, self.program.max_memory, f"model `{self.name}`")
            self._checked.add(id(g))
        check_variables(g, variables)
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

    def __init__(self, defs: _Defs, opt_level: int = DEFAULT_LEVEL, passes: list[str] | None = None):
        self.defs = defs
        self.opt_level = opt_level
        self.passes = passes
        self.max_memory: int | None = None  # bytes; None = this machine's memory
        # folders besides the .nn file's own tree that its `data` statements may read (granted by
        # the user, never by the file; see nndsl/data/paths.py)
        self.data_roots: tuple = ()
        self.data_found: dict = {}  # train block -> its DataSource, filled by check_program

    def model(self, name: str, **args) -> Model:
        if not isinstance(name, str):
            raise NameResolutionError(f"a model is named by a string, found {type(name).__name__}", code="E210",
                                      help=f"models here: {', '.join(self.models) or 'none'}")
        for k, v in args.items():
            bounds.check(v, None, f"argument `{k}`")
        base, entry = split_name(name)
        return Model(self, base, args, entry)

    @property
    def xla_options(self) -> dict:
        """The XLA compiler options this program's optimization level chose for JAX's default
        platform (nndsl/lower/backend.py); the trainer uses them, and code that jits `apply`
        itself can too: `jax.jit(f, compiler_options=program.xla_options)`."""
        return backend.xla_options(self.opt_level)

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


def load(path: str | Path, import_root: str | Path | None = None, opt_level: int = DEFAULT_LEVEL,
         passes: list[str] | None = None, data_roots=()) -> Program:
    """`data_roots`: folders outside the file's own tree its data statements may read."""
    prog = Program(load_file(path, import_root), opt_level, passes)
    prog.data_roots = tuple(data_roots or ())
    return prog


def loads(text: str, name: str = "<string>", base: str | Path | None = None, opt_level: int = DEFAULT_LEVEL,
          passes: list[str] | None = None, data_roots=()) -> Program:
    """`text` is the program itself (bytes are read as UTF-8, as a file would be)."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ImportFailure(f"the program is not UTF-8 text (byte {e.start} cannot be decoded)",
                                code="E502") from None
    if not isinstance(text, str):
        raise TypeCheckError(f"loads takes the program's text (a str), found {type(text).__name__}",
                             code="E310", help="to read a file, use nndsl.load(path)")
    if not isinstance(name, str):
        name = str(name)
    check_text(text, name)  # the 10 MB limit `load` applies to a file
    prog = Program(load_text(text, name, base), opt_level, passes)
    prog.data_roots = tuple(data_roots or ())
    return prog


def check_program(program: Program) -> list:
    """Elaborates every model, cell and train block of the entry file, used or not, and returns
    every error found (see `check_report` for the warnings too)."""
    return check_report(program)[0]


def check_report(program: Program) -> tuple[list, list]:
    """(errors, warnings): static arguments without defaults are checked symbolically, and what
    could not be checked without a value is a warning naming it (nndsl/elaborate/check.py)."""
    # data files only under the file's own tree or the roots the user granted (nndsl/data/paths.py)
    with paths.scope(program.data_roots, program.max_memory):
        return check_definitions(program.defs, _entry_dir(program), program.max_memory, program.data_found)


def _entry_dir(program: Program):
    return program.defs.base
