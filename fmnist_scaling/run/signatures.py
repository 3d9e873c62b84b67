"""A plug-in class's constructor arguments, read from its source without importing it.

The schema (:mod:`fmnist_scaling.run.schema`) checks the arguments of a dataset, a scaling mode
and a network before a run starts, where nothing may import torch (a refused command answers in
well under a second). So the class's module is found, not run (``importlib.util.find_spec``: its
parent packages import, the module does not), and parsed: the ``__init__`` of the class, or of
the first base class that has one, gives each keyword argument's annotation and default as syntax
trees. A name in an annotation that the module defines (``Widths = Annotated[...]``) or imports
from a module of this package or of the class's own package is replaced by what it stands for, so
that an alias reads the same wherever it lives.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

#: How deep aliases and base classes are followed (a cycle stops here).
MAX_DEPTH = 8
#: This package: its modules are always followed (a class of your own may subclass one of ours).
PACKAGE = __name__.split(".")[0]


@dataclass(frozen=True)
class Argument:
    """One keyword argument of a constructor: its annotation (aliases replaced) and its default
    (None: it has none; a default of ``None`` is a constant node)."""

    name: str
    annotation: ast.expr | None
    default: ast.expr | None


@dataclass(frozen=True)
class _Module:
    name: str
    is_package: bool
    classes: dict[str, ast.ClassDef]
    aliases: dict[str, ast.expr]  # top-level ``Name = value`` (and ``Name: TypeAlias = value``)
    imports: dict[str, tuple[str, str]]  # local name -> (module, name): ``from module import name``
    modules: dict[str, str]  # local name -> module: ``import a.b as c``


class _NoInit:
    """A class and its bases define no ``__init__``: object's, no arguments."""


NO_INIT = _NoInit()


def arguments(target: str) -> dict[str, Argument] | None:
    """The keyword arguments of the class at the dotted path ``target``, by name; None where
    its source cannot be read (a module that is not found or not Python source, a base class
    from another package whose ``__init__`` would be its)."""
    module, _, name = target.rpartition(".")
    if not module:
        return None
    found = _class_arguments(module, name, module.split(".")[0], 0)
    return {} if isinstance(found, _NoInit) else found


def literal(node: ast.expr | None) -> tuple[bool, object]:
    """``(True, value)`` for a literal node (tuples become lists, as the config writes them),
    ``(False, None)`` for anything else."""
    if node is None:
        return False, None
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None
    return True, _as_lists(value)


def _as_lists(value: object) -> object:
    return [_as_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def _followable(module: str, home: str) -> bool:
    """Whether a module's source is read: this package's, or that of the class's own package."""
    return module.split(".")[0] in (PACKAGE, home)


@functools.lru_cache(maxsize=128)
def _module(name: str) -> _Module | None:
    try:
        spec = importlib.util.find_spec(name)
    except Exception:  # noqa: BLE001 - a parent package that fails to import: the class is not readable
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None
    is_package = spec.submodule_search_locations is not None
    classes: dict[str, ast.ClassDef] = {}
    aliases: dict[str, ast.expr] = {}
    imports: dict[str, tuple[str, str]] = {}
    modules: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            classes[node.name] = node
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            aliases[node.targets[0].id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            aliases[node.target.id] = node.value
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node.module or "", node.level, name, is_package)
            for alias in node.names:
                imports[alias.asname or alias.name] = (source, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    modules[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    modules[top] = top
    return _Module(name, is_package, classes, aliases, imports, modules)


def _absolute(module: str, level: int, importer: str, is_package: bool) -> str:
    """The absolute name of ``from <level dots><module> import ...`` written in ``importer``."""
    if not level:
        return module
    parts = importer.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, module] if module else base)


def _class_arguments(module: str, name: str, home: str, depth: int) -> dict[str, Argument] | _NoInit | None:
    found = _module(module)
    if found is None or depth > MAX_DEPTH:
        return None
    node = found.classes.get(name)
    if node is None:  # imported into the module it is named by: read where it is defined
        origin = found.imports.get(name)
        if origin and _followable(origin[0], home):
            return _class_arguments(*origin, home, depth + 1)
        return None
    init = next((s for s in node.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"), None)
    if init is not None:
        return _init_arguments(init, found, home)
    if node.decorator_list:  # a dataclass and the like write an __init__ of their own
        return None
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id == "object":
            continue
        where = _where(base, found)
        if where is None or not _followable(where[0], home):
            return None  # a base from elsewhere (nn.Module): its __init__ is unknown here
        inherited = _class_arguments(*where, home, depth + 1)
        if not isinstance(inherited, _NoInit):
            return inherited
    return NO_INIT


def _where(node: ast.expr, module: _Module) -> tuple[str, str] | None:
    """The (module, name) a class expression of ``module`` refers to: ``Scaling``, ``nn.Module``."""
    if isinstance(node, ast.Name):
        if node.id in module.classes:
            return module.name, node.id
        return module.imports.get(node.id)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        owner = node.value.id
        if owner in module.modules:
            return module.modules[owner], node.attr
        if owner in module.imports:  # from torch import nn; nn.Module
            source, name = module.imports[owner]
            return f"{source}.{name}", node.attr
    return None


def _init_arguments(init: ast.FunctionDef, module: _Module, home: str) -> dict[str, Argument]:
    spec = init.args
    every = [*spec.posonlyargs, *spec.args]
    defaults: list[ast.expr | None] = [None] * (len(every) - len(spec.defaults)) + list(spec.defaults)
    first = max(len(spec.posonlyargs), 1)  # self, and positional-only arguments: never given by keyword
    pairs = [*list(zip(every, defaults, strict=True))[first:], *zip(spec.kwonlyargs, spec.kw_defaults, strict=True)]
    return {arg.arg: Argument(arg.arg, _resolved(arg.annotation, module, home, 0), default) for arg, default in pairs}


def _resolved(node: ast.expr | None, module: _Module, home: str, depth: int) -> ast.expr | None:
    """``node`` with each name that ``module`` defines or imports (from a followable module)
    replaced by its value there; a string annotation is parsed first."""
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value, mode="eval").body
        except SyntaxError:
            return None
    if depth > MAX_DEPTH:
        return node

    class Replace(ast.NodeTransformer):
        def visit_Name(self, name: ast.Name) -> ast.expr:
            value = _alias(name.id, module, home, depth)
            return name if value is None else value

    return Replace().visit(_copy(node))


def _alias(name: str, module: _Module, home: str, depth: int) -> ast.expr | None:
    if name in module.aliases:
        return _resolved(module.aliases[name], module, home, depth + 1)
    origin = module.imports.get(name)
    if origin is None or not _followable(origin[0], home):
        return None
    source = _module(origin[0])
    if source is None or depth > MAX_DEPTH:
        return None
    return _alias(origin[1], source, home, depth + 1)


def _copy(node: ast.expr) -> ast.expr:
    """A copy of ``node``: the transformer must not rewrite the cached module's own tree."""
    return ast.parse(ast.unparse(node), mode="eval").body
