"""Verification of Binance-style signed requests (pure; the clock is passed in).

A signed request carries header `X-MBX-APIKEY`, parameters `timestamp` (ms) and optionally
`recvWindow` (ms, default 5000, at most 60000), and `signature`: the hex HMAC-SHA256, keyed
by the API secret, of the request's parameter string exactly as sent (query string followed by
form body) without the `signature` parameter itself.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

MAX_RECV_WINDOW_MS = 60_000
DEFAULT_RECV_WINDOW_MS = 5_000
#: how far in the future a timestamp may be (ms)
FUTURE_TOLERANCE_MS = 1_000


@dataclass(frozen=True)
class AuthFailure:
    """A refused request: HTTP status, Binance error code and message."""

    status: int
    code: int
    message: str


def sign(payload: str, secret: str) -> str:
    """Hex HMAC-SHA256 of `payload` keyed by `secret`."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def signed_payload(query: str, body: str) -> tuple[str, str | None]:
    """(the string that was signed, the signature sent) from a raw query string and body."""
    signature = None
    parts = []
    for raw in (query, body):
        kept = []
        for item in raw.split("&") if raw else ():
            if item.startswith("signature="):
                signature = item[len("signature=") :]
            else:
                kept.append(item)
        if kept:
            parts.append("&".join(kept))
    return "".join(parts), signature


def verify(
    api_key: str | None, secrets: dict[str, str], query: str, body: str, params: dict[str, str], now_ms: int
) -> AuthFailure | str:
    """The API key's owner key when the request is properly signed and fresh, else an AuthFailure."""
    if not api_key or api_key not in secrets:
        return AuthFailure(401, -2015, "Invalid API-key, IP, or permissions for action.")
    payload, signature = signed_payload(query, body)
    if not signature:
        return AuthFailure(
            400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
        )
    if not hmac.compare_digest(sign(payload, secrets[api_key]), signature.lower()):
        return AuthFailure(400, -1022, "Signature for this request is not valid.")
    try:
        ts = int(params.get("timestamp", ""))
        window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
    except ValueError:
        return AuthFailure(
            400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
        )
    if not 0 < window <= MAX_RECV_WINDOW_MS:
        return AuthFailure(400, -1131, "recvWindow must be less than 60000")
    if ts > now_ms + FUTURE_TOLERANCE_MS or now_ms - ts > window:
        return AuthFailure(400, -1021, "Timestamp for this request is outside of the recvWindow.")
    return api_key
