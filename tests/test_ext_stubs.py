"""The `.pyi` stubs of the compiled package basis_ext declare exactly what each module exports.

For every Cython module in ext/, the public names of the compiled module (classes and constants it
defines, not names it imports) must be the public names of its stub, and vice versa; each class
must have the same public members, properties where the compiled class has attributes and methods
with the same parameters and defaults where it has methods; and every constant the stub gives a
value must have that value at run time.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import types
from pathlib import Path

import pytest

EXT = Path(__file__).resolve().parent.parent / "ext"
MODULES = sorted(p.stem for p in EXT.glob("*.pyx"))


def _public(name: str) -> bool:
    return not name.startswith("_")


def _runtime_exports(mod: types.ModuleType) -> dict[str, object]:
    """Public names the module defines itself: its classes and constants, not what it imports."""
    out = {}
    for name, value in vars(mod).items():
        if not _public(name) or isinstance(value, types.ModuleType):
            continue
        if getattr(value, "__module__", mod.__name__) != mod.__name__:
            continue  # imported (collections.deque, another basis_ext module's class)
        out[name] = value
    return out


def _stub_exports(tree: ast.Module) -> dict[str, ast.stmt]:
    """Public names the stub declares; an import counts only as an explicit re-export (`as` itself)."""
    out: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
        elif isinstance(node, ast.Assign):
            out.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
        elif isinstance(node, ast.Import | ast.ImportFrom):
            out.update({a.asname: node for a in node.names if a.asname and a.asname == a.name.split(".")[-1]})
    return {name: node for name, node in out.items() if _public(name)}


def _stub(module: str) -> ast.Module:
    path = EXT / f"{module}.pyi"
    assert path.exists(), f"ext/{module}.pyx has no stub ext/{module}.pyi"
    return ast.parse(path.read_text(), filename=str(path))


@pytest.mark.parametrize("module", MODULES)
def test_stub_declares_exactly_the_compiled_module_names(module):
    runtime = _runtime_exports(importlib.import_module(f"basis_ext.{module}"))
    stub = _stub_exports(_stub(module))
    assert sorted(set(runtime) - set(stub)) == [], f"compiled basis_ext.{module} exports names its stub lacks"
    assert sorted(set(stub) - set(runtime)) == [], f"ext/{module}.pyi declares names the module lacks"


@pytest.mark.parametrize("module", MODULES)
def test_stub_constants_have_the_compiled_values(module):
    runtime = _runtime_exports(importlib.import_module(f"basis_ext.{module}"))
    checked = 0
    for name, node in _stub_exports(_stub(module)).items():
        if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
            assert ast.literal_eval(node.value) == runtime[name], f"{module}.{name}"
            checked += 1
        elif isinstance(node, ast.AnnAssign):  # declared without a value: the type names its shape
            assert not isinstance(runtime[name], type), f"{module}.{name} is a class at run time"
    if module == "router":
        assert checked >= 20  # priorities, operations, faults and decisions all carry their values


def _stub_members(cls: ast.ClassDef) -> dict[str, ast.FunctionDef | ast.AnnAssign]:
    out: dict[str, ast.FunctionDef | ast.AnnAssign] = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and _public(node.name):
            out[node.name] = node
        elif (
            isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and _public(node.target.id)
        ):
            out[node.target.id] = node
    return out


def _is_property(node: ast.FunctionDef | ast.AnnAssign) -> bool:
    if isinstance(node, ast.AnnAssign):
        return True
    return any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)


def _stub_parameters(fn: ast.FunctionDef) -> list[tuple[str, object]]:
    """(name, default or inspect.Parameter.empty) for each positional parameter of a stub method."""
    args = fn.args.posonlyargs + fn.args.args
    defaults = [inspect.Parameter.empty] * (len(args) - len(fn.args.defaults))
    defaults += [ast.literal_eval(d) for d in fn.args.defaults]
    return [(a.arg, d) for a, d in zip(args, defaults, strict=True)]


def _classes():
    for module in MODULES:
        mod = importlib.import_module(f"basis_ext.{module}")
        for name, node in _stub_exports(_stub(module)).items():
            if isinstance(node, ast.ClassDef):
                yield pytest.param(getattr(mod, name), node, id=f"{module}.{name}")


@pytest.mark.parametrize(("cls", "node"), list(_classes()))
def test_stub_class_matches_the_compiled_class(cls, node):
    runtime = {name: value for name, value in vars(cls).items() if _public(name)}
    stub = _stub_members(node)
    assert sorted(runtime) == sorted(stub), f"{cls.__qualname__}: members differ from its stub"
    for name, value in runtime.items():
        if inspect.isdatadescriptor(value):
            assert _is_property(stub[name]), f"{cls.__qualname__}.{name} is an attribute, stub says method"
            continue
        member = stub[name]
        assert isinstance(member, ast.FunctionDef) and not _is_property(member), (
            f"{cls.__qualname__}.{name} is a method, stub says attribute"
        )
        compiled = [(p.name, p.default) for p in inspect.signature(value).parameters.values()]
        assert compiled == _stub_parameters(member), f"{cls.__qualname__}.{name}: parameters differ"
