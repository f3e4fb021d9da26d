"""What decides an asset's output, derived from its code: an asset's version is the digest of the
project code its compute function reaches, the data it reads from the objects it closes over, and
the values of the resource settings it reads.

The reach is a static walk from the compute function:
- a function is its syntax tree (docstrings, comments and layout out: `behaviour`), and every name
  it uses is followed: the globals and closure values of its module, the attributes of the modules
  and objects they hold, the functions it imports inside its body;
- a call whose arguments are known objects (a method spec, the grid, an embedding space) walks the
  callee with those objects bound, so `spec.module.score` reaches that method's `score` only;
- a branch or loop over data the walk holds is walked as it runs: `if Need.X in spec.needs` only
  where it goes, `for need in sorted(spec.needs)` once per need with the loop variable bound, and a
  table read by a known key (`INPUTS[need]`) reaches that entry only, not the whole table;
- a parameter annotated with a project class is typed: `layout.ring_records` reaches
  `Layout.ring_records`; on a resource (a `ConfigurableResource`), `data.max_length` is a setting;
- an attribute read on an object of unknown type reaches the members of that name of every
  project class the walk has reached (with their dunder methods, and the methods a library base
  class calls back: a Trainer callback's `on_step_end`);
- a module-level constant is the statement that defines it (and, if it is a path into the
  package, the bytes of the files it ships there); a module used whole is all of it;
- data read from bound objects (the method's params, the grid's budgets) is part of the version as
  its canonical text.

Library code is not walked (its version is the installed package's). Resource fields declared
output-neutral (`OUTPUT_NEUTRAL`: where files live, how many worker processes share the work) are
left out of the settings; each declaration names the test that shows the bytes do not move.
`selection_assets_tests/assets/test_code_versions.py` holds the walk against a trace of what really
runs while the lineage materialises.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import functools
import hashlib
import importlib
import inspect
import textwrap
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from types import FunctionType, MethodType, ModuleType
from typing import Any, Callable

from selection_assets.resources import OUTPUT_NEUTRAL

PROJECT_PACKAGE = "selection_assets"


@functools.cache
def behaviour(source: str) -> str:
    """`source` as a dump of its syntax tree without docstrings (comments and layout are not in it)."""
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def is_project(obj: Any) -> bool:
    """Whether `obj` (a module, function or class) is this project's own code."""
    name = obj.__name__ if isinstance(obj, ModuleType) else getattr(obj, "__module__", None)
    return isinstance(name, str) and (name == PROJECT_PACKAGE or name.startswith(PROJECT_PACKAGE + "."))


def is_resource(cls: type) -> bool:
    """Whether `cls` is a configurable resource (a pydantic model of settings)."""
    return isinstance(cls, type) and hasattr(cls, "model_fields") and is_project(cls)


def output_neutral_fields(cls: type) -> dict[str, str]:
    """The fields of resource `cls` declared output-neutral, each with the test that shows it."""
    return {name: info.json_schema_extra[OUTPUT_NEUTRAL] for name, info in cls.model_fields.items()
            if isinstance(info.json_schema_extra, dict) and OUTPUT_NEUTRAL in info.json_schema_extra}


def canonical(value: Any) -> str | None:
    """A text that stands for a data value whatever the process (None: not data this can spell)."""
    if isinstance(value, enum.Enum):
        return f"{type(value).__qualname__}.{value.name}"
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    if isinstance(value, PurePath):
        return repr(str(value))
    if isinstance(value, (list, tuple)):
        parts = [canonical(v) for v in value]
        return None if None in parts else f"[{', '.join(parts)}]"
    if isinstance(value, (set, frozenset)):
        parts = [canonical(v) for v in value]
        return None if None in parts else f"{{{', '.join(sorted(parts))}}}"
    if isinstance(value, dict):
        items = [(canonical(k), canonical(v)) for k, v in value.items()]
        if any(None in item for item in items):
            return None
        return "{" + ", ".join(sorted(f"{k}: {v}" for k, v in items)) + "}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and is_project(type(value)):
        parts = {f.name: canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if None in parts.values():
            return None
        return f"{type(value).__qualname__}({', '.join(f'{k}={v}' for k, v in parts.items())})"
    return None


@dataclass(frozen=True)
class Typed:
    """An object of a known project class whose value the walk does not hold (an annotated parameter)."""

    cls: type


UNKNOWN = None  # what an expression of unknown value resolves to


@dataclass
class Reach:
    """What one compute function reaches: code units (id -> behaviour), data read from bound objects
    (path=canonical text), and resource settings read ((resource class, field))."""

    code: dict[str, str] = field(default_factory=dict)
    values: set[str] = field(default_factory=set)
    settings: set[tuple[type, str]] = field(default_factory=set)

    def covers(self, module: str, qualname: str) -> bool:
        """Whether code running as `qualname` in `module` (a function, or a function, class or
        comprehension nested in one) is part of this reach."""
        for unit in self.code:
            unit_module, _, unit_name = unit.partition(":")
            if unit_module == module and (qualname == unit_name or qualname.startswith(unit_name + ".<locals>.")):
                return True
        return False

    def code_digest(self) -> str:
        digest = hashlib.sha256()
        for unit in sorted(self.code):
            digest.update(f"{unit}\n{self.code[unit]}\n".encode())
        for value in sorted(self.values):
            digest.update(f"{value}\n".encode())
        return digest.hexdigest()


@functools.cache
def _source(obj) -> str:
    return textwrap.dedent(inspect.getsource(obj))


@functools.cache
def _module_tree(module: ModuleType) -> ast.Module:
    return ast.parse(inspect.getsource(module))


def _defining_statements(module: ModuleType, name: str, depth: int = 0) -> tuple[ModuleType, list[ast.stmt]]:
    """The top-level statements of `module` that bind `name` (following `from x import name` into
    the project module x), and the module they are in."""
    found = []
    for node in _module_tree(module).body:
        if isinstance(node, ast.ImportFrom) and node.module and depth < 8:
            for alias in node.names:
                if (alias.asname or alias.name) == name and node.module.startswith(PROJECT_PACKAGE):
                    source = importlib.import_module(node.module)
                    if isinstance(getattr(source, alias.name, None), ModuleType):
                        return source, []
                    return _defining_statements(source, alias.name, depth + 1)
        targets = []
        if isinstance(node, ast.Assign):
            targets = [n for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target] if isinstance(node.target, ast.Name) else []
        elif isinstance(node, (ast.If, ast.Try)):
            targets = [n for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
        if any(t.id == name for t in targets):
            found.append(node)
    return module, found


PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def _package_data_digest(value: Any) -> str | None:
    """The digest of the files a path into the package names (every file beneath a folder), or
    None for anything else."""
    if not isinstance(value, PurePath):
        return None
    path = Path(value).resolve()
    if path != PACKAGE_ROOT and PACKAGE_ROOT not in path.parents or not path.exists():
        return None
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(PACKAGE_ROOT).as_posix()}\n".encode() + file.read_bytes())
    return digest.hexdigest()


def _unwrap(value: Any) -> Any:
    while True:
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        elif isinstance(value, functools.partial):
            value = value.func
        elif hasattr(value, "__wrapped__") and callable(value):
            value = value.__wrapped__
        else:
            return value


def _per_code(derive: Callable[[FunctionType], Any]) -> Callable[[FunctionType], Any]:
    """`derive` cached per code object: the closures of one definition share their source."""
    cache: dict = {}

    @functools.wraps(derive)
    def cached(fn: FunctionType) -> Any:
        if fn.__code__ not in cache:
            cache[fn.__code__] = derive(fn)
        return cache[fn.__code__]

    return cached


@_per_code
def _local_names(fn: FunctionType) -> frozenset[str]:
    """Names bound inside a function (parameters, assignments, loop and with targets, nested
    definitions), which are not its module's globals."""
    parsed = _parsed_function(fn)
    if parsed is None:
        return frozenset()
    node, names = parsed[0], set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, (ast.Store, ast.Del)):
            names.add(sub.id)
        elif isinstance(sub, ast.arg):
            names.add(sub.arg)
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and sub is not node:
            names.add(sub.name)
        elif isinstance(sub, ast.ExceptHandler) and sub.name:
            names.add(sub.name)
    return frozenset(names)


_NO_SELF = object()  # a function walked without a first argument bound


def _cell_filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _annotated_class(annotation: ast.expr, namespace: dict) -> type | None:
    """The one project class an annotation names (`Layout`, `TrainResource | None`, "Grid"), if any."""
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        try:
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return None
    found = set()
    for node in ast.walk(annotation):
        value = None
        if isinstance(node, ast.Name):
            value = namespace.get(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            value = getattr(namespace.get(node.value.id), node.attr, None)
        if isinstance(value, type) and is_project(value):
            found.add(value)
    return found.pop() if len(found) == 1 else None


def _identity(value: Any) -> Any:
    return ("typed", value.cls) if isinstance(value, Typed) else id(value)


@_per_code
def _parsed_function(fn: FunctionType) -> tuple[ast.AST, str] | None:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return None
    node = tree.body[0] if tree.body else tree
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        node.decorator_list = []
    return node, behaviour(ast.unparse(node))


@dataclass
class _Found:
    """What one function, class shell, statement or module reaches, to be merged into its caller's:
    a `Reach`'s parts, and what the asset-level pass over members needs (classes, untyped names)."""

    code: dict[str, str] = field(default_factory=dict)
    values: set[str] = field(default_factory=set)
    settings: set[tuple[type, str]] = field(default_factory=set)
    classes: set[type] = field(default_factory=set)
    untyped_attributes: set[str] = field(default_factory=set)
    members: set[tuple[type, str]] = field(default_factory=set)  # walked without a known instance
    keepalive: list = field(default_factory=list)  # the objects its cache key names by id
    cut_at: int | None = None  # the depth of a call cycle's head above it: not complete until there

    def merge(self, other: "_Found") -> None:
        self.code.update(other.code)
        self.values |= other.values
        self.settings |= other.settings
        self.classes |= other.classes
        self.untyped_attributes |= other.untyped_attributes
        self.members |= other.members


# what each function (with its bound arguments), class shell, statement and module reaches, across
# walks: building the definitions walks every asset, and most share their helpers. The source of
# the process's modules does not change while it runs.
_CACHE: dict[tuple, _Found] = {}


class Walk:
    """The static walk (module docstring) from one or more roots."""

    def __init__(self):
        self.stack: list[_Found] = [_Found()]
        self.active: list[tuple] = []

    @property
    def found(self) -> _Found:
        return self.stack[-1]

    def run(self, *roots: Any) -> Reach:
        """Walk from `roots` (functions, classes, modules, objects) until nothing new is reached."""
        for root in roots:
            self.take(root, "root")
        found = self.stack[0]
        while True:
            wanted = {(cls, name) for cls in found.classes
                      for name in {*_members_called_unseen(cls), *(set(vars(cls)) & found.untyped_attributes)}}
            if wanted <= found.members:
                return Reach(code=dict(found.code), values=set(found.values), settings=set(found.settings))
            for cls, name in wanted - found.members:
                self._member(cls, name, _NO_SELF)

    def _cached(self, key: tuple, keepalive: list, walk: Callable[[], None]) -> None:
        """Run `walk` into a fresh `_Found` for `key` (or reuse the cached one) and merge it."""
        if key in _CACHE:
            self.found.merge(_CACHE[key])
            return
        if key in self.active:  # a call cycle: the rest of it is walked by the frame of its head
            head = self.active.index(key)
            self.found.cut_at = head if self.found.cut_at is None else min(self.found.cut_at, head)
            return
        self.stack.append(_Found(keepalive=keepalive))
        self.active.append(key)
        try:
            walk()
        finally:
            depth = len(self.active) - 1
            self.active.pop()
            done = self.stack.pop()
        if done.cut_at is None or done.cut_at >= depth:
            _CACHE[key] = done
        else:
            cut = self.found.cut_at
            self.found.cut_at = done.cut_at if cut is None else min(cut, done.cut_at)
        self.found.merge(done)

    # values ------------------------------------------------------------------------------------
    def take(self, value: Any, path: str) -> None:
        """Make `value`, read whole at `path`, part of the reach: code is walked, data is spelled."""
        if isinstance(value, Typed):
            self.reach_class(value.cls)
            return
        if isinstance(value, MethodType):
            self.function(value.__func__, self_value=value.__self__)
            return
        value = _unwrap(value)
        if isinstance(value, ModuleType):
            if is_project(value):
                self._module_whole(value)
        elif isinstance(value, type):
            self.reach_class(value)
        elif isinstance(value, FunctionType):
            self.function(value)
        elif _is_object(value):
            self._take_object(value, path)
        else:
            text = canonical(value)
            if text is not None:
                self.found.values.add(f"{path}={text}")
            # the code and objects a container holds (a set's by no position: its order is the process's)
            items = (value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple))
                     else (("*", item) for item in value) if isinstance(value, (set, frozenset)) else ())
            for key, item in items:
                if isinstance(item, (ModuleType, type, FunctionType, MethodType, list, tuple, dict)) or _is_object(item):
                    self.take(item, f"{path}[{key!r}]")

    def _take_object(self, value: Any, path: str) -> None:
        """An instance of a project class read whole: its class, any member, every field's value."""
        cls = type(value)
        if is_resource(cls):
            self.found.settings.update((cls, name) for name in cls.model_fields)
            return
        self.reach_class(cls)
        text = canonical(value)
        if text is not None:
            self.found.values.add(f"{path}={text}")
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                item = getattr(value, f.name)
                if isinstance(item, (ModuleType, type, FunctionType, MethodType)) or _is_object(item):
                    self.take(item, f"{path}.{f.name}")
        for name in vars(cls):
            if (cls, name) not in self.found.members:
                self._member(cls, name, _NO_SELF)

    def reach_class(self, cls: type) -> None:
        """A project class reached: its shell (bases, decorators, fields, class attributes) and its
        project bases; its methods follow from what is read of it."""
        if not is_project(cls) or is_resource(cls) or cls in self.found.classes:
            return

        def walk() -> None:
            self.found.classes.add(cls)
            for base in cls.__mro__[1:]:
                if is_project(base):
                    self.reach_class(base)
            try:
                tree = ast.parse(_source(cls))
            except (OSError, TypeError, SyntaxError):
                return
            shell = tree.body[0]
            shell.body = [s for s in shell.body
                          if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))] or [ast.Pass()]
            unit = f"{cls.__module__}:{cls.__qualname__}#class"
            self.found.code[unit] = behaviour(ast.unparse(shell))
            _Resolver(self, inspect.getmodule(cls).__dict__, set(), {}, {}, unit).visit(shell)

        self._cached(("class", cls), [cls], walk)

    def _module_whole(self, module: ModuleType) -> None:
        def walk() -> None:
            unit = f"{module.__name__}:"
            self.found.code[unit] = behaviour(inspect.getsource(module))
            for value in list(vars(module).values()):
                value = _unwrap(value)
                if isinstance(value, FunctionType) and value.__module__ == module.__name__:
                    self.function(value)
                elif isinstance(value, type) and value.__module__ == module.__name__ and is_project(value):
                    self.reach_class(value)
                    for name in vars(value):
                        self._member(value, name, _NO_SELF)
            statements = [s for s in _module_tree(module).body
                          if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
            _Resolver(self, module.__dict__, set(), {}, {}, unit).visit(ast.Module(body=statements, type_ignores=[]))

        self._cached(("module", module), [module], walk)

    def global_statement(self, module: ModuleType, name: str) -> None:
        """A module constant read: the statements that define it, and what they read; a path into
        the package (data it ships, such as the harness task configurations) brings the bytes of
        the files there."""
        def walk() -> None:
            source, statements = _defining_statements(module, name)
            if statements:
                unit = f"{source.__name__}:#{name}"
                self.found.code[unit] = behaviour("\n".join(ast.unparse(s) for s in statements))
                _Resolver(self, source.__dict__, set(), {}, {}, unit).visit(
                    ast.Module(body=statements, type_ignores=[]))
            shipped = _package_data_digest(getattr(module, name, None))
            if shipped is not None:
                self.found.code[f"{module.__name__}:#{name}@files"] = shipped

        self._cached(("global", module, name), [module], walk)

    # functions ---------------------------------------------------------------------------------
    def function(self, fn: Any, self_value: Any = _NO_SELF, bound: dict[str, Any] | None = None) -> None:
        """Walk `fn` (with `self_value` as its first argument and `bound` arguments, when known)."""
        fn = _unwrap(fn)
        if not isinstance(fn, FunctionType) or not is_project(fn):
            return
        bound = bound or {}
        key = ("function", fn.__code__, id(fn.__closure__) if fn.__closure__ else None, _identity(self_value),
               tuple(sorted((k, _identity(v)) for k, v in bound.items())))

        def walk() -> None:
            parsed = _parsed_function(fn)
            if parsed is None:
                return
            node, dump = parsed
            unit = f"{fn.__module__}:{fn.__qualname__}"
            self.found.code[unit] = dump
            known = dict(_parameter_types(fn))
            if self_value is not _NO_SELF and _first_parameter(fn):
                known[_first_parameter(fn)] = self_value
            known.update(bound)
            closure = {name: cell.cell_contents for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ())
                       if _cell_filled(cell)}
            _Resolver(self, fn.__globals__, _local_names(fn), closure, known, unit).visit(node)

        self._cached(key, [fn, fn.__closure__, self_value, *bound.values()], walk)

    def _member(self, cls: type, name: str, self_value: Any) -> Any:
        """Walk member `name` of `cls` (its first argument `self_value` when known); a static
        method or class attribute's value, else UNKNOWN."""
        if self_value is _NO_SELF:
            self.found.members.add((cls, name))
            self_value = Typed(cls)
        raw = inspect.getattr_static(cls, name, None)
        if raw is None:
            return UNKNOWN
        if isinstance(raw, property):
            if raw.fget is not None:
                self.function(raw.fget, self_value=self_value)
            return UNKNOWN
        if isinstance(raw, classmethod):
            self.function(raw.__func__, self_value=cls)
            return UNKNOWN
        if isinstance(raw, staticmethod):
            self.function(raw.__func__)
            return raw.__func__
        if isinstance(_unwrap(raw), FunctionType):
            self.function(raw, self_value=self_value)
            return UNKNOWN
        owner = next((c for c in cls.__mro__ if name in vars(c)), cls)
        self.reach_class(owner)  # a class attribute: in its class's shell
        return raw


@functools.cache
def _members_called_unseen(cls: type) -> tuple[str, ...]:
    """Members of `cls` that may run where no typed call shows it: dunder methods, and methods a
    library base class calls back (a Trainer callback's `on_step_end`, a Dataset's `__getitem__`)."""
    library_bases = [base for base in cls.__mro__[1:] if base is not object and not is_project(base)]
    return tuple(name for name, raw in vars(cls).items()
                 if (isinstance(raw, property) or callable(_unwrap(raw)))
                 and ((name.startswith("__") and name.endswith("__"))
                      or any(hasattr(base, name) for base in library_bases)))


@_per_code
def _parameter_types(fn: FunctionType) -> tuple[tuple[str, Typed], ...]:
    """The parameters of `fn` annotated with a project class, typed."""
    parsed = _parsed_function(fn)
    arguments = getattr(parsed[0], "args", None) if parsed else None
    if arguments is None:
        return ()
    typed = []
    for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
        cls = _annotated_class(arg.annotation, fn.__globals__) if arg.annotation is not None else None
        if cls is not None:
            typed.append((arg.arg, Typed(cls)))
    return tuple(typed)


@_per_code
def _first_parameter(fn: FunctionType) -> str | None:
    code = fn.__code__
    return code.co_varnames[0] if code.co_argcount else None


class _Resolver(ast.NodeVisitor):
    """Resolves the names and attribute chains of one function (or statement) for a `Walk`."""

    def __init__(self, walk: Walk, namespace: dict, local_names: set[str], closure: dict,
                 known: dict[str, Any], unit: str):
        self.walk = walk
        self.namespace = namespace
        self.local_names = local_names
        self.closure = closure
        self.known = dict(known)  # local name -> value or Typed
        self.unit = unit

    # resolution --------------------------------------------------------------------------------
    def resolve(self, node: ast.expr, as_base: bool = False) -> Any:
        """The value `node` stands for when the walk can know it (UNKNOWN otherwise). What it reads
        is taken into the reach; a function, class or module is taken whole unless it is only the
        base of an attribute or a call (`as_base`)."""
        if isinstance(node, ast.Name):
            value = self._name(node.id)
        elif isinstance(node, ast.Attribute):
            value = self._attribute(self.resolve(node.value, as_base=True), node.attr)
        elif isinstance(node, ast.Call):
            return self._call(node)
        elif isinstance(node, ast.IfExp):
            return self._if_expression(node)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            value = self._subscript(node)
        else:
            self.generic_visit(node)
            return UNKNOWN
        if not as_base:
            self._use(value)
        return value

    def _use(self, value: Any) -> None:
        """A resolved value used as it is (not as the base of an attribute or a call)."""
        if isinstance(value, MethodType):
            self.walk.function(value.__func__, self_value=value.__self__)
        elif isinstance(value, (FunctionType, ModuleType, type, staticmethod, classmethod, functools.partial)):
            self.walk.take(value, self.unit)

    def _data(self, value: Any, path: str) -> None:
        """Data read from an object the walk holds (a closure value, a bound object's field)."""
        if not isinstance(value, (ModuleType, type, FunctionType, MethodType)) and not _is_object(value):
            self.walk.take(value, f"{self.unit}:{path}")

    def _name(self, name: str) -> Any:
        if name in self.known:
            return self.known[name]
        if name in self.local_names:
            return UNKNOWN
        if name in self.closure:
            value = self.closure[name]
            self._data(value, name)
            return value
        if name == "__name__" and is_project(importlib.import_module(self.namespace["__name__"])):
            # a function that names its own module runs it as a program (`python -m`): all of it runs
            self.walk.take(importlib.import_module(self.namespace["__name__"]), self.unit)
            return UNKNOWN
        if name in self.namespace:
            value = self.namespace[name]
            if _is_constant(value):
                module = importlib.import_module(self.namespace["__name__"])
                if is_project(module):
                    self.walk.global_statement(module, name)
            return value
        return UNKNOWN

    def _attribute(self, base: Any, attr: str) -> Any:
        if base is UNKNOWN:
            self.walk.found.untyped_attributes.add(attr)
            return UNKNOWN
        if isinstance(base, Typed):
            cls = base.cls
            if is_resource(cls):
                if attr in cls.model_fields:
                    self.walk.found.settings.add((cls, attr))
                    return UNKNOWN
                return self.walk._member(cls, attr, base)
            self.walk.reach_class(cls)
            return self.walk._member(cls, attr, _NO_SELF)
        if isinstance(base, ModuleType):
            if not is_project(base):
                return UNKNOWN
            value = getattr(base, attr, UNKNOWN)
            if value is not UNKNOWN and _is_constant(value):
                self.walk.global_statement(base, attr)
            return value
        if isinstance(base, type):
            if not is_project(base):
                return UNKNOWN
            if not is_resource(base):
                self.walk.reach_class(base)
            return self.walk._member(base, attr, _NO_SELF)
        cls = type(base)
        if not is_project(cls):
            return UNKNOWN
        if is_resource(cls):
            return self._attribute(Typed(cls), attr)
        self.walk.reach_class(cls)
        if attr in getattr(base, "__dict__", {}) or (
                dataclasses.is_dataclass(base) and attr in {f.name for f in dataclasses.fields(base)}):
            value = getattr(base, attr)
            self._data(value, f"{cls.__qualname__}.{attr}")
            return value
        raw = inspect.getattr_static(cls, attr, None)
        if isinstance(raw, FunctionType):
            return MethodType(raw, base)
        return self.walk._member(cls, attr, base)

    def _subscript(self, node: ast.Subscript) -> Any:
        """`table[key]` with both known: that entry only (its data spelled, its code walked where it
        is used). Anything else is walked whole and is of unknown value."""
        key_known, key = self._evaluate(node.slice)
        table = self._table(node.value) if key_known else UNKNOWN
        if isinstance(table, dict):
            try:
                present = key in table  # never table[key]: a defaultdict would grow
            except TypeError:
                present = False
            if present:
                entry = dict.get(table, key)
                path = f"{ast.unparse(node.value)}[{canonical(key)}]"
                self._data(entry, path)
                if _is_object(entry):  # which entry it is: a table of instances of one class
                    self.walk.found.values.add(f"{self.unit}:{path}={type(entry).__qualname__}")
                return entry
        self.generic_visit(node)
        return UNKNOWN

    def _table(self, node: ast.expr) -> Any:
        """The dict a subscript's base names, without taking the statement that defines all of it."""
        if isinstance(node, ast.Name):
            if node.id in self.known:
                return self.known[node.id]
            if node.id in self.local_names:
                return UNKNOWN
            if node.id in self.closure:
                return self.closure[node.id]
            return self.namespace.get(node.id, UNKNOWN)
        if isinstance(node, ast.Attribute):
            base = self._table(node.value)
            if isinstance(base, ModuleType) and is_project(base):
                return getattr(base, node.attr, UNKNOWN)
        return UNKNOWN

    def _call(self, node: ast.Call) -> Any:
        if (isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr") and "getattr" not in self.known
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)):
            # getattr(obj, "name"[, default]) reads obj.name; hasattr only asks whether it is there
            for default in node.args[2:]:
                self.visit(default)
            value = self._attribute(self.resolve(node.args[0], as_base=True), node.args[1].value)
            if node.func.id == "hasattr":
                return UNKNOWN
            self._use(value)
            return value
        callee = self.resolve(node.func, as_base=True)
        arguments = [self.resolve(a.value if isinstance(a, ast.Starred) else a, as_base=True) for a in node.args]
        keywords = {k.arg: self.resolve(k.value, as_base=True) for k in node.keywords}
        target, self_value = callee, _NO_SELF
        if isinstance(callee, MethodType):
            target, self_value = callee.__func__, callee.__self__
        target = _unwrap(target)
        bound = {}
        if isinstance(target, FunctionType) and is_project(target):
            bound = self._bind(target, arguments, keywords, skip_first=self_value is not _NO_SELF)
        for value in [*arguments, *keywords.values()]:
            if any(value is b for b in bound.values()):
                continue
            self._use(value)
            if _is_object(value):  # an object handed to code the walk does not follow: read whole
                self.walk.take(value, f"{self.unit}:argument")
        if isinstance(target, FunctionType) and is_project(target):
            self.walk.function(target, self_value=self_value, bound=bound)
            returned = _annotated_return(target)
            return Typed(returned) if returned is not None else UNKNOWN
        self._use(callee)
        if isinstance(target, type) and is_project(target):
            return Typed(target)
        return UNKNOWN

    @staticmethod
    def _bind(fn: FunctionType, arguments: list, keywords: dict, skip_first: bool) -> dict[str, Any]:
        """The parameters of `fn` that receive known project objects."""
        code = fn.__code__
        names = list(code.co_varnames[:code.co_argcount + code.co_kwonlyargcount])
        if skip_first:
            names = names[1:]
        return {name: value for name, value in [*zip(names, arguments), *keywords.items()]
                if name is not None and _is_object(value)}

    # branches decided by bound data ------------------------------------------------------------
    def decided(self, test: ast.expr) -> bool | None:
        """The truth of a branch's test when it reads only data the walk holds (the method's needs,
        a space's name): then only the branch taken is walked. None: not known statically."""
        known, value = self._evaluate(test)
        return bool(value) if known else None

    def _evaluate(self, node: ast.expr) -> tuple[bool, Any]:
        if isinstance(node, ast.Constant):
            return True, node.value
        if isinstance(node, (ast.Name, ast.Attribute)):
            value = self.resolve(node, as_base=True)
            if value is UNKNOWN or isinstance(value, Typed) or (canonical(value) is None and not isinstance(
                    value, (ModuleType, type, FunctionType))):
                return False, None
            return True, value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            known, value = self._evaluate(node.operand)
            return known, (not value) if known else None
        if isinstance(node, ast.BoolOp):
            results = [self._evaluate(v) for v in node.values]
            if not all(known for known, _ in results):
                return False, None
            values = [bool(value) for _, value in results]
            return True, all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            (left_known, left), (right_known, right) = self._evaluate(node.left), self._evaluate(node.right)
            if left_known and right_known and isinstance(left, (set, frozenset)) and isinstance(right, (set, frozenset)):
                return True, (left & right) if isinstance(node.op, ast.BitAnd) else (left | right)
            return False, None
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "sorted"
                and "sorted" not in self.known and "sorted" not in self.local_names and "sorted" not in self.namespace
                and len(node.args) == 1 and not node.keywords):
            known, value = self._evaluate(node.args[0])
            if known and isinstance(value, (set, frozenset, list, tuple)):
                try:
                    return True, sorted(value)
                except TypeError:
                    return False, None
            return False, None
        if isinstance(node, ast.Set):
            results = [self._evaluate(e) for e in node.elts]
            return (True, {v for _, v in results}) if all(k for k, _ in results) else (False, None)
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            (left_known, left), (right_known, right) = self._evaluate(node.left), self._evaluate(node.comparators[0])
            if not (left_known and right_known):
                return False, None
            compare = {ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b, ast.Eq: lambda a, b: a == b,
                       ast.NotEq: lambda a, b: a != b, ast.Is: lambda a, b: a is b, ast.IsNot: lambda a, b: a is not b}
            operation = compare.get(type(node.ops[0]))
            if operation is None:
                return False, None
            try:
                return True, operation(left, right)
            except TypeError:
                return False, None
        return False, None

    def visit_If(self, node: ast.If) -> None:
        taken = self.decided(node.test)
        self.visit(node.test)
        for statement in ([] if taken is False else node.body) + ([] if taken is True else node.orelse):
            self.visit(statement)

    def visit_For(self, node: ast.For) -> None:
        known, items = self._evaluate(node.iter)
        if not (known and isinstance(node.target, ast.Name) and isinstance(items, (set, frozenset, list, tuple))
                and all(canonical(item) is not None for item in items)):
            self.generic_visit(node)
            return
        self.visit(node.iter)
        ordered = items if isinstance(items, (list, tuple)) else sorted(items, key=canonical)
        for item in ordered:  # the body once per item, as it runs, with the loop variable bound
            self.known[node.target.id] = item
            for statement in node.body:
                self.visit(statement)
        self.known.pop(node.target.id, None)
        for statement in node.orelse:
            self.visit(statement)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._if_expression(node)

    def _if_expression(self, node: ast.IfExp) -> Any:
        taken = self.decided(node.test)
        self.visit(node.test)
        if taken is None:
            self.visit(node.body)
            self.visit(node.orelse)
            return UNKNOWN
        return self.resolve(node.body if taken else node.orelse)

    # visiting ----------------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.resolve(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load):
            self.resolve(node)
        else:
            self.resolve(node.value, as_base=True)

    def visit_Call(self, node: ast.Call) -> None:
        self._call(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        value = self.resolve(node.value)
        for target in node.targets:
            self.visit(target)
            if isinstance(target, ast.Name) and value is not UNKNOWN:
                self.known[target.id] = value

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            value = self.resolve(node.value)
            if isinstance(node.target, ast.Name) and value is not UNKNOWN:
                self.known[node.target.id] = value

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.startswith(PROJECT_PACKAGE):
                module = importlib.import_module(alias.name)
                self.known[alias.asname or alias.name.split(".")[0]] = (
                    module if alias.asname else importlib.import_module(alias.name.split(".")[0]))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if not node.module or not node.module.startswith(PROJECT_PACKAGE):
            return
        module = importlib.import_module(node.module)
        for alias in node.names:
            value = getattr(module, alias.name, None)
            if value is None:
                value = importlib.import_module(f"{node.module}.{alias.name}")
            self.known[alias.asname or alias.name] = value
            if _is_constant(value):
                self.walk.global_statement(module, alias.name)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        for statement in node.body:
            self.visit(statement)

    visit_AsyncFunctionDef = visit_FunctionDef


def _is_constant(value: Any) -> bool:
    """A module global that is neither code nor a module: defined by its statement."""
    return not isinstance(value, (ModuleType, type, FunctionType)) and not callable(value)


def _is_object(value: Any) -> bool:
    """Whether `value` is an instance of a project class (a spec, the grid, a space)."""
    return is_project(type(value)) and not isinstance(value, (ModuleType, type, FunctionType, enum.Enum))


@_per_code
def _annotated_return(fn: FunctionType) -> type | None:
    parsed = _parsed_function(fn)
    returns = getattr(parsed[0], "returns", None) if parsed else None
    return _annotated_class(returns, fn.__globals__) if returns is not None else None


def reach(*roots: Any) -> Reach:
    """What `roots` (compute functions, usually) reach: the module docstring's walk."""
    return Walk().run(*roots)


def settings_text(settings: set[tuple[type, str]], resources: dict[type, Any]) -> dict[str, str]:
    """The settings as `Resource.field` -> the value it has in `resources` (a resource instance per
    class; a class without one: its default), output-neutral fields left out."""
    text = {}
    for cls, name in settings:
        if name in output_neutral_fields(cls):
            continue
        instance = resources.get(cls)
        value = getattr(instance, name) if instance is not None else cls.model_fields[name].default
        text[f"{cls.__name__}.{name}"] = repr(value)
    return dict(sorted(text.items()))


def version(found: Reach, resources: dict[type, Any]) -> str:
    """An asset's version: the digest of its code and bound data, then of its settings' values."""
    settings = settings_text(found.settings, resources)
    settings_digest = hashlib.sha256(repr(settings).encode()).hexdigest()
    return f"{found.code_digest()[:16]}.{settings_digest[:8]}"


def compute_function(assets_def) -> Callable:
    """The function an asset's op runs."""
    return assets_def.op.compute_fn.decorated_fn
