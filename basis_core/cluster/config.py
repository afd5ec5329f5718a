"""The `[cluster]` table: how this engine reaches the cluster's NATS servers and what it trades.

    [cluster]
    servers = ["nats://10.0.0.5:4222", "nats://10.0.0.6:4222"]   # nats:// or tls://, no user:pass@
    engine_id = "tokyo-1"            # unique in the cluster: letters, digits, - and _
    venues = ["alpha", "beta"]       # this engine's shard: venues of [venues] ...
    instruments = ["alpha_btc"]      # ... and instruments of [instruments] on those venues
    user_env = "BASIS_NATS_USER"     # credentials: the NAMES of environment variables, never values
    password_env = "BASIS_NATS_PASSWORD"
    token_env = ""                   # or a token instead of user and password
    creds_env = ""                   # or a .creds file's path (NATS decentralised auth)
    bucket = "basis_limits"          # the JetStream key-value bucket holding the global limits
    lease_s = 10.0                   # a holder not heard from for this long is listed as silent
    request_timeout_s = 1.0          # a request unanswered this long: the cluster is degraded
    chunk_fraction = 0.05            # each reservation: this fraction of the limit, ahead of need
    on_halted = "alone"              # or "halt_all": this engine going HALTED halts the cluster

`basis run` with this table reserves the run's shared limits (`limits.py`) through `link.py`.
Credentials are read from the environment when connecting (`connect_options`); a missing
variable is a ConfigError naming the key that names it, never the value.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..configio import require
from ..errors import ConfigError

#: an engine id, a bucket name: what a JetStream key or bucket name may hold, short
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
SCHEMES = ("nats", "tls")
MAX_SERVERS = 32


@dataclass(frozen=True)
class ClusterConfig:
    servers: tuple[str, ...] = ()
    engine_id: str = ""
    venues: tuple[str, ...] = ()
    instruments: tuple[str, ...] = ()
    user_env: str = ""
    password_env: str = ""
    token_env: str = ""
    creds_env: str = ""
    bucket: str = "basis_limits"
    lease_s: float = 10.0
    request_timeout_s: float = 1.0
    chunk_fraction: float = 0.05
    on_halted: str = "alone"

    def _validate(self, path: str) -> None:
        require(0 < len(self.servers) <= MAX_SERVERS, f"{path}.servers", f"name 1 to {MAX_SERVERS} NATS URLs")
        for i, url in enumerate(self.servers):
            _check_url(url, f"{path}.servers[{i}]")
        require(
            bool(NAME_RE.match(self.engine_id)),
            f"{path}.engine_id",
            "must be 1-64 letters, digits, - or _ (unique in the cluster)",
        )
        require(len(self.venues) > 0, f"{path}.venues", "name the venues this engine trades (its shard)")
        for key in ("venues", "instruments"):
            names = getattr(self, key)
            dup = sorted({n for n in names if names.count(n) > 1})
            require(not dup, f"{path}.{key}", f"names {dup[0]!r} twice" if dup else "")
        for key in ("user_env", "password_env", "token_env", "creds_env"):
            value = getattr(self, key)
            require(
                not value or bool(ENV_RE.match(value)),
                f"{path}.{key}",
                "must be the name of an environment variable (letters, digits, _)",
            )
        require(
            bool(self.user_env) == bool(self.password_env),
            f"{path}.password_env" if self.user_env else f"{path}.user_env",
            "set user_env and password_env together",
        )
        kinds = [k for k in ("user_env", "token_env", "creds_env") if getattr(self, k)]
        require(len(kinds) <= 1, f"{path}.{kinds[-1]}" if kinds else path, "one kind of credentials only")
        require(bool(NAME_RE.match(self.bucket)), f"{path}.bucket", "must be 1-64 letters, digits, - or _")
        require(
            math.isfinite(self.lease_s) and 0.1 <= self.lease_s <= 3600.0,
            f"{path}.lease_s",
            "must be in [0.1, 3600] s",
        )
        require(
            math.isfinite(self.request_timeout_s) and 0.01 <= self.request_timeout_s <= 60.0,
            f"{path}.request_timeout_s",
            "must be in [0.01, 60] s",
        )
        require(
            math.isfinite(self.chunk_fraction) and 0.001 <= self.chunk_fraction <= 1.0,
            f"{path}.chunk_fraction",
            "must be in [0.001, 1] (the share of a limit one reservation takes)",
        )
        require(self.on_halted in ("alone", "halt_all"), f"{path}.on_halted", "must be 'alone' or 'halt_all'")

    def check_shard(self, venues: Mapping[str, Any], instruments: Mapping[str, Any], path: str) -> None:
        """The shard against the run config: every venue in [venues], every instrument in
        [instruments] and on one of the shard's venues."""
        for i, name in enumerate(self.venues):
            require(name in venues, f"{path}.venues[{i}]", f"names venue {name!r}, which is not in [venues]")
        for i, name in enumerate(self.instruments):
            require(
                name in instruments,
                f"{path}.instruments[{i}]",
                f"names instrument {name!r}, which is not in [instruments]",
            )
            venue = instruments[name].venue
            require(
                venue in self.venues,
                f"{path}.instruments[{i}]",
                f"instrument {name!r} is on venue {venue!r}, which is not in this engine's shard",
            )

    def connect_options(self, environ: Mapping[str, str] | None = None, path: str = "cluster") -> dict:
        """Keyword arguments for `nats.connect`: servers, timeouts and the credentials read from
        the environment. A named variable that is unset or empty is a ConfigError naming its key
        (the value never appears in an error)."""
        env = os.environ if environ is None else environ

        def read(key: str) -> str:
            name = getattr(self, key)
            value = env.get(name, "")
            if not value:
                raise ConfigError(f"{path}.{key}", f"environment variable {name} is not set")
            return value

        opts: dict[str, Any] = {"servers": list(self.servers), "connect_timeout": self.request_timeout_s * 2}
        if self.user_env:
            opts["user"], opts["password"] = read("user_env"), read("password_env")
        elif self.token_env:
            opts["token"] = read("token_env")
        elif self.creds_env:
            opts["user_credentials"] = read("creds_env")
        return opts


def _check_url(url: str, path: str) -> None:
    """A NATS server URL: nats:// or tls://, a host and a port, no credentials in it (they come
    from the environment; the URL is shown in logs). The URL is not echoed back: it may hold one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(path, "not a URL (nats://HOST:PORT)") from None
    require(parts.scheme in SCHEMES, path, "must start with nats:// or tls://")
    require(
        parts.username is None and parts.password is None,
        path,
        "must not hold credentials: name them in user_env / password_env",
    )
    require(bool(parts.hostname), path, "must name a host (nats://HOST:PORT)")
    require(port is not None, path, "must name a port (nats://HOST:PORT)")
    require(parts.path in ("", "/") and not parts.query, path, "must be nats://HOST:PORT only")
