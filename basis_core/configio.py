"""TOML into frozen, validated dataclasses; every error names its key path.

A config class is a frozen dataclass whose fields are scalars (bool, int, float, str), nested
config dataclasses, `dict[str, X]` tables or `tuple[X, ...]` arrays. Unknown keys are errors.
A field typed `Mapping[str, Any]` holds a table checked elsewhere (an adapter's own section),
kept as read, frozen (tables as read-only mappings, arrays as tuples); `to_plain` gives it back.
A dataclass may define `_validate(self, path)` for cross-field checks; it raises ConfigError.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import math
import tomllib
import types
import typing
from pathlib import Path

from .errors import ConfigError


def load_toml(path: str | Path) -> dict:
    """Parse a TOML file; syntax errors become ConfigError with the file name and line."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("", f"config file not found: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{p}: TOML syntax error: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"{p}: not UTF-8 text (byte {exc.start}): TOML files are UTF-8") from None
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {p}: {exc.strerror or exc}") from None


def build(cls, data, path: str = ""):
    """Build an instance of config dataclass `cls` from a mapping, validating every field."""
    if not isinstance(data, dict):
        raise ConfigError(path, f"expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = _join(path, unknown[0])
        raise ConfigError(key, f"unknown key (allowed here: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        key = _join(path, name)
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(key, "required key is missing")
    obj = cls(**kwargs)
    check = getattr(obj, "_validate", None)
    if check is not None:
        check(path)
    return obj


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _frozen(value):
    """A TOML value as read, made read-only: tables as mappings, arrays as tuples."""
    if isinstance(value, dict):
        return types.MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _convert(tp, value, path):
    if tp is typing.Any:  # checked by its owner (see the module docstring)
        return _frozen(value)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _convert(inner[0], value, path)
        raise ConfigError(path, "ambiguous union type in config class")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(path, f"must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a table, got {type(value).__name__}")
        return types.MappingProxyType({k: _convert(args[1], v, _join(path, k)) for k, v in value.items()})
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(path, f"expected an array, got {type(value).__name__}")
        item = args[0]
        return tuple(_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(path, f"must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {value!r}")
        return value
    raise ConfigError(path, f"unsupported config type {tp!r}")


def require(cond: bool, path: str, message: str) -> None:
    """Raise ConfigError(path, message) unless `cond` holds."""
    if not cond:
        raise ConfigError(path, message)


def _unset(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def to_plain(obj):
    """A config object as plain data (dicts, lists, scalars) that `build` accepts back."""
    if dataclasses.is_dataclass(obj):
        # None (an optional field not set) and a non-finite default (the loader refuses
        # non-finite input) are left out: loading the result gives the same object back
        return {
            f.name: to_plain(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if f.init and not _unset(getattr(obj, f.name))
        }
    if isinstance(obj, collections.abc.Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [to_plain(v) for v in obj]
    return obj
