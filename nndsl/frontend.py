"""Files to a Program: parsing, imports (relative files and the standard library), definitions.

Imports never leave the directory tree of the entry file (or `import_root`), follow no symlink out
of it, and never execute anything: a `.nn` file only declares.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import ErrorGroup, ImportFailure, LimitError, NameResolutionError, NndslError
from .limits import MAX_SOURCE_BYTES
from .resources import stdlib_dir
from .source import Source, Span
from .syntax import ast
from .syntax.parser import parse

MAX_FILE_BYTES = MAX_SOURCE_BYTES
MAX_IMPORT_DEPTH = 64


@dataclass
class Program:
    """Every definition visible from the entry file, by name."""

    definitions: dict = field(default_factory=dict)  # name -> ast.ModelDef | ast.TrainDef
    files: list = field(default_factory=list)
    entry: str = "<string>"
    base: Path | None = None  # where relative data paths resolve: the entry file's folder
    stdlib: set = field(default_factory=set)  # names of the standard-library files loaded

    def models(self) -> list[str]:
        return [n for n, d in self.definitions.items() if isinstance(d, ast.ModelDef)]

    def trains(self) -> list[str]:
        return [n for n, d in self.definitions.items() if isinstance(d, ast.TrainDef)]


def read_source(path: Path) -> str:
    """A .nn file's text through the bounded reader (nndsl/files.py): regular files only, at most
    MAX_FILE_BYTES, then refused if binary or not UTF-8."""
    from .files import read_bytes
    data = read_bytes(path, MAX_FILE_BYTES, "file", name=Path(path).name)
    if b"\x00" in data:
        raise ImportFailure(f"{path.name} is a binary file, not nndsl source (a NUL byte)",
                            _byte_span(data, data.index(b"\x00"), path), code="E502")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ImportFailure(f"{path.name} is not UTF-8 (byte {e.start})", _byte_span(data, e.start, path),
                            code="E502") from None


def _byte_span(data: bytes, pos: int, path: Path) -> Span:
    """The line and column of byte `pos`, for a file that cannot be decoded as a whole."""
    before = data[:pos]
    line = before.count(b"\n") + 1
    col = pos - (before.rfind(b"\n") + 1) + 1
    text = data.decode("utf-8", errors="replace").replace("\x00", "?")
    return Span(Source(text, str(path)), line, col, line, col + 1)


class Loader:
    def __init__(self, root: Path | None):
        self.root = root.resolve() if root else None
        self.program = Program()
        self.origin: dict[str, Span | None] = {}
        self.loading: list[Path] = []
        self.loaded: set[Path] = set()
        self.errors: list[NndslError] = []

    def load_text(self, text: str, name: str, path: Path | None) -> None:
        module = parse(text, name)
        if path is not None:
            self.loading.append(path)
            self.loaded.add(path)
        for item in module.items:
            try:
                if isinstance(item, ast.Import):
                    self._import(item, path)
                else:
                    self._define(item)
            except ErrorGroup as e:
                self.errors.extend(e.errors)
            except NndslError as e:
                self.errors.append(e)
        if path is not None:
            self.loading.pop()

    def _define(self, item) -> None:
        if isinstance(item, ast.ModelDef):
            _check_signature(item, imported=len(self.loading) > 1)
        prev = self.program.definitions.get(item.name)
        if prev is not None:
            raise NameResolutionError(
                f"`{item.name}` is defined twice", item.name_span,
                notes=[(self.origin.get(item.name), "first defined here")], code="E201")
        self.program.definitions[item.name] = item
        self.origin[item.name] = item.name_span

    def _resolve(self, item: ast.Import, here: Path | None) -> Path:
        from .files import resolve
        if item.is_path:
            base = here.parent if here else Path.cwd()
            target = (base / item.target)
            root = self.root or (here.parent.resolve() if here else Path.cwd().resolve())
            resolved = resolve(target, "import", item.span, name=item.target)
            if root not in resolved.parents and resolved != root:
                raise ImportFailure(f'import "{item.target}" leaves the project directory',
                                    item.span, code="E503",
                                    help="imports may only name files inside the entry file's directory tree")
            return resolved
        lib = stdlib_dir()
        path = lib / f"{item.target}.nn"
        if not path.is_file():
            from .errors import closest
            have = [p.stem for p in lib.glob("*.nn")]
            guess = closest(item.target, have)
            raise ImportFailure(f"no standard library module `{item.target}`", item.span, code="E504",
                                help=f"did you mean `{guess}`?" if guess else f"available: {', '.join(sorted(have))}")
        return path.resolve()

    def _import(self, item: ast.Import, here: Path | None) -> None:
        path = self._resolve(item, here)
        if path in self.loading:
            chain = " -> ".join(p.name for p in self.loading + [path])
            raise ImportFailure(f"import cycle: {chain}", item.span, code="E505")
        if path in self.loaded:
            return
        if len(self.loading) >= MAX_IMPORT_DEPTH:
            raise LimitError(f"imports nested deeper than {MAX_IMPORT_DEPTH}", item.span, code="E403")
        try:
            text = read_source(path)
        except NndslError as e:
            if e.diagnostics[0].span is not None:
                e.diagnostics[0].notes.insert(0, (e.diagnostics[0].span, "the offending byte"))
            e.diagnostics[0].span = item.span
            raise
        shown = str(path.name) if path.parent == stdlib_dir().resolve() else _display(path)
        if path.parent == stdlib_dir().resolve():
            self.program.stdlib.add(shown)
        self.load_text(text, shown, path)


def shadows_builtin(name: str) -> bool:
    from .elaborate.builder import SPECIAL
    from .ops import OPS
    return (name in OPS and OPS[name].kind != "internal") or name in SPECIAL


def _check_signature(item: ast.ModelDef, imported: bool) -> None:
    """An imported model may not take a built-in's name: the importer would silently get it
    wherever it writes `relu` (in the file that defines it, lint warns instead: the author sees
    it, and `model step { ... }` is legal there). Nor may two arguments share a name: the second
    would silently win."""
    if imported and shadows_builtin(item.name):
        raise NameResolutionError(
            f"imported {item.kind} `{item.name}` would replace the built-in `{item.name}` in the importing "
            "file", item.name_span, code="E216",
            help=f"rename it (`{item.name.capitalize()}`, say): an import must not change what "
                 f"`{item.name}` means in the file that imports it")
    seen: dict = {}
    for p in item.params:
        if p.name in seen:
            raise NameResolutionError(f"{item.kind} `{item.name}` has two arguments named `{p.name}`", p.span,
                                      code="E217", notes=[(seen[p.name], "first declared here")])
        seen[p.name] = p.span


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return path.name


def load_file(path: str | Path, import_root: str | Path | None = None) -> Program:
    p = Path(path)
    text = read_source(p)
    loader = Loader(Path(import_root) if import_root else p.resolve().parent)
    loader.program.entry = str(path)
    loader.program.base = p.resolve().parent
    loader.load_text(text, str(path), p.resolve())
    if loader.errors:
        raise loader.errors[0] if len(loader.errors) == 1 else ErrorGroup(loader.errors)
    return loader.program


def load_text(text: str, name: str = "<string>", base: str | Path | None = None) -> Program:
    base_path = Path(base).resolve() if base else None
    loader = Loader(base_path)
    fake = (base_path / "__main__.nn") if base_path else None
    loader.program.base = base_path
    loader.program.entry = name
    loader.load_text(text, name, fake)
    if loader.errors:
        raise loader.errors[0] if len(loader.errors) == 1 else ErrorGroup(loader.errors)
    return loader.program
