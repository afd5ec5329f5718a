"""The signing key of an EVM venue: loaded from the environment or a keystore, never shown.

`Signer.from_config(cfg, env)` reads the hex key from `env[cfg.key_env]`, or decrypts the
eth_account keystore file `cfg.keystore` with the password in `env[cfg.keystore_password_env]`.
The key lives only inside the eth_account LocalAccount held by the Signer; the Signer's repr
and str show the address only, and every error raised while loading names the variable or the
file, never its content.

Endpoint URLs are secrets too when a hosted provider puts an API key in them: `safe_url`
gives the form that may be shown, and `hide_in_logs` redacts the rest from the HTTP loggers.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from collections.abc import Mapping

from eth_account import Account

from basis_core.errors import ConfigError, OrderRejected, redact


class Signer:
    """Signs transactions for one account. Only `address` is public."""

    __slots__ = ("_account", "address")

    def __init__(self, account):
        self._account = account
        self.address = account.address

    @classmethod
    def from_hex(cls, key_hex: str, source: str = "key") -> Signer:
        """A signer from a 32-byte hex key; ConfigError (naming `source` only) if malformed."""
        text = key_hex.strip()
        body = text[2:] if text[:2] in ("0x", "0X") else text
        if len(body) != 64 or any(c not in "0123456789abcdefABCDEF" for c in body):
            raise ConfigError(source, "is not a 32-byte hex private key")
        try:
            return cls(Account.from_key(bytes.fromhex(body)))
        except Exception:  # the library's message may echo the key
            raise ConfigError(source, "is not a valid secp256k1 private key") from None

    @classmethod
    def from_config(cls, cfg, env: Mapping[str, str] | None = None) -> Signer:
        """Load the key named by `cfg` (a Web3VenueConfig): keystore if set, else key_env."""
        env = os.environ if env is None else env
        if cfg.keystore:
            pw_name = cfg.keystore_password_env
            if pw_name not in env:
                raise ConfigError("keystore_password_env", f"environment variable {pw_name} is not set")
            try:
                with open(cfg.keystore, "rb") as fh:
                    blob = json.loads(fh.read())
            except OSError as exc:
                raise ConfigError("keystore", f"cannot read {cfg.keystore}: {exc.strerror}") from None
            except ValueError:
                raise ConfigError("keystore", f"{cfg.keystore} is not keystore JSON") from None
            try:
                key = Account.decrypt(blob, env[pw_name])
            except Exception:
                raise ConfigError(
                    "keystore", f"cannot decrypt {cfg.keystore} with the password in {pw_name}"
                ) from None
            return cls(Account.from_key(key))
        if cfg.key_env not in env:
            raise ConfigError("key_env", f"environment variable {cfg.key_env} is not set")
        return cls.from_hex(env[cfg.key_env], source=f"environment variable {cfg.key_env}")

    def sign(self, tx: dict) -> bytes:
        """The raw signed transaction bytes for `tx` (a typed-transaction dict)."""
        try:
            return bytes(self._account.sign_transaction(tx).raw_transaction)
        except Exception as exc:  # the library's message is not shown: it may describe key material
            raise OrderRejected(
                "evm", "bad_input", f"cannot sign transaction: {type(exc).__name__}", reason="bad_input"
            ) from None

    def sign_text(self, text: str) -> str:
        """An EIP-191 personal-message signature of `text` (hex): what a bundle relay's
        `X-Flashbots-Signature` header carries."""
        from eth_account.messages import encode_defunct

        return "0x" + bytes(self._account.sign_message(encode_defunct(text=text)).signature).hex()

    def keystore(self, password: str, iterations: int | None = None) -> dict:
        """The key as eth_account keystore JSON encrypted with `password` (what `from_config`
        reads back); `iterations` lowers the KDF's work (tests only)."""
        return dict(Account.encrypt(self._account.key, password, iterations=iterations))

    def __repr__(self) -> str:
        return f"Signer(address={self.address})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("a Signer cannot be pickled")


# -- endpoint URLs: hosted nodes put API keys in the path, query or user-info ---------------

_LOGGERS_WITH_URLS = (
    "web3.providers.HTTPProvider",
    "web3._utils.http_session_manager.HTTPSessionManager",
    "urllib3.connectionpool",
    "websockets.client",
)


def safe_url(url: str) -> str:
    """The endpoint as it may be shown: scheme://host[:port], with `/***` if it had a path,
    query or user-info (where hosted providers carry API keys)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    hidden = parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password
    return f"{parts.scheme}://{host}{port}" + ("/***" if hidden else "")


def url_secrets(url: str) -> list[str]:
    """The parts of `url` that must not be shown: the whole URL and its path+query, when
    they carry anything beyond the host."""
    parts = urllib.parse.urlsplit(url)
    if safe_url(url).endswith("/***"):
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        return [s for s in (url, tail if tail not in ("", "/") else "", parts.password or "") if s]
    return []


class _RedactFilter(logging.Filter):
    """Rewrites records of the HTTP client loggers with every registered secret replaced."""

    def __init__(self):
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            clean = redact(text, sorted(self.secrets, key=len, reverse=True))
            if clean != text:
                record.msg, record.args = clean, ()
        return True


_FILTER = _RedactFilter()


def hide_in_logs(secrets) -> None:
    """Redact `secrets` from the web3 / urllib3 HTTP loggers from now on (idempotent)."""
    new = {s for s in secrets if s}
    if not new:
        return
    _FILTER.secrets |= new
    for name in _LOGGERS_WITH_URLS:
        lg = logging.getLogger(name)
        if _FILTER not in lg.filters:
            lg.addFilter(_FILTER)
