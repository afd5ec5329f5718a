"""API credentials of a ccxt venue: loaded from environment variables or a secrets file, never shown.

`Credentials` hides its values from `str`, `repr`, pickling-by-accident in logs and equality
dumps; `secrets()` lists them for `basis_core.errors.redact`, which the client applies to every
error message it builds. `RedactingFilter` scrubs them from log records of the ccxt logger (whose
debug output includes request headers, where the API key travels).

A secrets file is TOML with `api_key`, `secret` and optionally `password`; it must not be
readable by group or others (mode 0600), or loading refuses it.
"""

from __future__ import annotations

import logging
import os
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path

from basis_core.errors import ConfigError, redact

from .config import CredentialsConfig


class Credentials:
    """An API key, secret and optional password. Values are reachable only as attributes."""

    __slots__ = ("_key", "_password", "_secret")

    def __init__(self, api_key: str, secret: str, password: str = ""):
        for name, value in (("api_key", api_key), ("secret", secret)):
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"credentials.{name}", "is empty")
        self._key, self._secret, self._password = api_key, secret, password or ""

    @property
    def api_key(self) -> str:
        return self._key

    @property
    def secret(self) -> str:
        return self._secret

    @property
    def password(self) -> str:
        return self._password

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, for `redact`."""
        return tuple(s for s in (self._key, self._secret, self._password) if s)

    def __repr__(self) -> str:
        return "Credentials(api_key=***, secret=***)"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("Credentials are not picklable")


def load(
    cfg: CredentialsConfig, env: Mapping[str, str] | None = None, path: str = "credentials"
) -> Credentials:
    """Credentials named by `cfg`. ConfigError names the missing variable or the bad file,
    never a value."""
    env = os.environ if env is None else env
    if cfg.secrets_file:
        return _from_file(Path(cfg.secrets_file), f"{path}.secrets_file")
    if not (cfg.api_key_env and cfg.secret_env):
        raise ConfigError(path, "no credentials configured (api_key_env + secret_env, or secrets_file)")
    values = []
    for field, var in (("api_key_env", cfg.api_key_env), ("secret_env", cfg.secret_env)):
        value = env.get(var, "")
        if not value:
            raise ConfigError(f"{path}.{field}", f"environment variable {var} is not set")
        values.append(value)
    password = env.get(cfg.password_env, "") if cfg.password_env else ""
    if cfg.password_env and not password:
        raise ConfigError(f"{path}.password_env", f"environment variable {cfg.password_env} is not set")
    return Credentials(values[0], values[1], password)


def _from_file(p: Path, path: str) -> Credentials:
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(path, f"secrets file not found: {p}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(path, f"secrets file {p} is readable by group or others (chmod 600 it)")
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError:
        raise ConfigError(
            path, f"secrets file {p} is not valid TOML"
        ) from None  # no excerpt: it may hold a secret
    unknown = sorted(set(data) - {"api_key", "secret", "password"})
    if unknown:
        raise ConfigError(path, f"secrets file {p}: unknown key {unknown[0]!r}")
    for key in ("api_key", "secret"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ConfigError(path, f"secrets file {p}: {key} is missing or not a string")
    return Credentials(data["api_key"], data["secret"], str(data.get("password", "")))


class RedactingFilter(logging.Filter):
    """Replaces each secret with *** in a record's message and arguments."""

    def __init__(self, secrets: tuple[str, ...]):
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def add(self, secrets: tuple[str, ...]) -> None:
        """Redact `secrets` too (several clients may log through one logger)."""
        self._secrets = tuple(dict.fromkeys(self._secrets + tuple(s for s in secrets if s)))

    @classmethod
    def install(cls, logger: logging.Logger, secrets: tuple[str, ...]) -> None:
        """Make `logger` redact `secrets`, extending its filter if it has one."""
        for f in logger.filters:
            if isinstance(f, cls):
                f.add(secrets)
                return
        logger.addFilter(cls(secrets))

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            record.msg = redact(str(record.msg), self._secrets)
            if record.args:
                args = record.args if isinstance(record.args, tuple) else (record.args,)
                record.args = tuple(redact(str(a), self._secrets) for a in args)
        return True
