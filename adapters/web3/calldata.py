"""Deterministic calldata: the same inputs always give the same bytes.

Encoding is plain ABI (eth_abi) with the selector computed from a fixed signature string, so
it does not depend on dict ordering, web3 contract objects, checksum casing or the node.
Inputs are checked first; a bad value raises OrderRejected(reason="bad_input") instead of
being wrapped or truncated.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from basis_core.errors import OrderRejected

from .constants import EXECUTE_SIGNATURE

UINT256_MAX = (1 << 256) - 1


def _bad(message: str) -> OrderRejected:
    return OrderRejected("evm", "bad_input", message, reason="bad_input")


def address(value, what: str = "address") -> str:
    """A checksummed 20-byte address; OrderRejected for anything else."""
    if isinstance(value, (bytes, bytearray)) and len(value) == 20:
        return to_checksum_address(bytes(value))
    text = str(value)
    body = text[2:] if text[:2] in ("0x", "0X") else ""
    if len(body) != 40 or any(c not in "0123456789abcdefABCDEF" for c in body):
        raise _bad(f"{what} {text!r} is not a 20-byte hex address")
    return to_checksum_address(text)


def uint(value, what: str, bits: int = 256) -> int:
    """A Python int in [0, 2**bits); OrderRejected for floats, bools, negatives, overflow."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{what} must be an integer amount in base units, got {type(value).__name__}")
    if not 0 <= value < (1 << bits):
        raise _bad(f"{what} {value} out of uint{bits} range")
    return value


def function_selector(sig: str) -> bytes:
    return keccak(text=sig)[:4]


@dataclass(frozen=True)
class Leg:
    """One hop: sell the running amount of `token_in` into `pool`; revert unless the output
    is at least `min_out` (base units of the pool's other token)."""

    pool: str
    token_in: str
    min_out: int

    def __post_init__(self):
        object.__setattr__(self, "pool", address(self.pool, "leg pool"))
        object.__setattr__(self, "token_in", address(self.token_in, "leg token_in"))
        uint(self.min_out, "leg min_out")


def tag_bytes(tag: int | bytes) -> bytes:
    """An opportunity tag as bytes32: an int (e.g. a coid) big-endian, or <= 32 raw bytes."""
    if isinstance(tag, (bytes, bytearray)):
        if len(tag) > 32:
            raise _bad("tag longer than 32 bytes")
        return bytes(tag).rjust(32, b"\0")
    return uint(tag, "tag").to_bytes(32, "big")


def encode_execute(legs, amount_in: int, min_profit: int, deadline: int, tag: int | bytes = 0) -> bytes:
    """Calldata of AtomicExecutor.execute(legs, amountIn, minProfit, deadline, tag)."""
    legs = tuple(legs)
    if not 2 <= len(legs) <= 4:
        raise _bad(f"a path needs 2..4 legs, got {len(legs)}")
    args = (
        [(leg.pool, leg.token_in, leg.min_out) for leg in legs],
        uint(amount_in, "amount_in"),
        uint(min_profit, "min_profit"),
        uint(deadline, "deadline", 64),
        tag_bytes(tag),
    )
    return function_selector(EXECUTE_SIGNATURE) + abi_encode(
        ["(address,address,uint256)[]", "uint256", "uint256", "uint256", "bytes32"], args
    )


def encode_call(sig: str, types: list[str], args: list) -> bytes:
    """Calldata of any function given its signature string and ABI types."""
    return function_selector(sig) + abi_encode(types, args)
