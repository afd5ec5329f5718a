"""Revert data to typed errors.

Solidity reverts carry ABI-encoded data: `Error(string)` for require/revert with a message,
`Panic(uint256)` for assert and checked arithmetic, or a contract's custom error (4-byte
selector + ABI-encoded arguments). `RevertDecoder` knows every custom error in a set of ABIs
and turns revert bytes into a ChainRevert with `error_name` and `revert_args`. Unknown data is
kept as hex under the name "unknown", never dropped. `refusal_reason` says which RejectReason
a revert is: a min-out or profit bound, an expired deadline, a token balance too small.
"""

from __future__ import annotations

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils import keccak, to_checksum_address

from basis_core.errors import ChainRevert

from .constants import ERROR_STRING_SELECTOR, PANIC_CODES, PANIC_SELECTOR


def canonical_type(param: dict) -> str:
    """The canonical ABI type of one ABI input (tuples expanded, array suffix kept)."""
    t = param["type"]
    if t.startswith("tuple"):
        inner = ",".join(canonical_type(c) for c in param["components"])
        return f"({inner}){t[5:]}"
    return t


def signature(entry: dict) -> str:
    """`name(type1,type2,...)` of an ABI function, event or error entry."""
    return f"{entry['name']}({','.join(canonical_type(p) for p in entry.get('inputs', ()))})"


def selector(sig: str) -> bytes:
    """The 4-byte selector of a signature string."""
    return keccak(text=sig)[:4]


class RevertDecoder:
    """Decodes revert data using the custom errors of the given ABIs."""

    def __init__(self, abis=(), venue: str = "evm"):
        self.venue = venue
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in abis:
            for entry in abi:
                if entry.get("type") == "error":
                    types = [canonical_type(p) for p in entry.get("inputs", ())]
                    names = [p.get("name", "") for p in entry.get("inputs", ())]
                    self._errors[selector(signature(entry))] = (entry["name"], types, names)

    @property
    def error_names(self) -> list[str]:
        return sorted(name for name, _, _ in self._errors.values())

    def decode(self, data: bytes | str | None, message: str = "") -> ChainRevert:
        """A ChainRevert for `data` (bytes or 0x-hex; None/empty = a revert without data)."""
        raw = _to_bytes(data)
        hexdata = "0x" + raw.hex()
        if len(raw) < 4:
            return ChainRevert(
                self.venue,
                "unknown" if raw else "empty",
                (),
                hexdata,
                message or ("revert without data" if not raw else ""),
            )
        sel, body = raw[:4], raw[4:]
        try:
            if sel == ERROR_STRING_SELECTOR:
                (text,) = abi_decode(["string"], body)
                return ChainRevert(self.venue, "Error", (text,), hexdata, f"Error({text!r})")
            if sel == PANIC_SELECTOR:
                (code,) = abi_decode(["uint256"], body)
                return ChainRevert(
                    self.venue,
                    "Panic",
                    (code,),
                    hexdata,
                    f"Panic(0x{code:02x}: {PANIC_CODES.get(code, 'unknown code')})",
                )
            if sel in self._errors:
                name, types, _ = self._errors[sel]
                values = abi_decode(types, body)
                return ChainRevert(
                    self.venue, name, tuple(_plain(v, t) for v, t in zip(values, types)), hexdata
                )
        except DecodingError:
            pass
        return ChainRevert(self.venue, "unknown", (), hexdata, f"undecodable revert data {hexdata[:74]}")


def _plain(v, t: str = ""):
    """Decoded ABI values as plain Python: bytes as 0x-hex, addresses checksummed."""
    if t == "address" and isinstance(v, str):
        return to_checksum_address(v)
    if isinstance(v, bytes):
        return "0x" + v.hex()
    if isinstance(v, (tuple, list)):
        return tuple(_plain(x, t[:-2] if t.endswith("[]") else "") for x in v)
    return v


def _to_bytes(data) -> bytes:
    if data is None:
        return b""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    text = str(data)
    if text.startswith(("0x", "0X")):
        text = text[2:]
    try:
        return bytes.fromhex(text)
    except ValueError:
        return text.encode()


# -- why a trade was refused: a revert's decoded error to a RejectReason name ---------------------

#: custom errors (this project's contracts, OpenZeppelin 5 ERC-20s) -> RejectReason name
REFUSAL_OF_ERROR = {
    "InsufficientOutput": "slippage",  # a pool's min-out
    "LegBelowMin": "slippage",  # the executor's per-leg min-out
    "ProfitBelowMin": "slippage",  # the executor's profit bound
    "Expired": "expired",  # the executor's deadline
    "ERC20InsufficientBalance": "insufficient_funds",
    "ERC20InsufficientAllowance": "venue_reject",
}

#: `Error(string)` messages (lower case, matched as substrings) -> RejectReason name, in order
REFUSAL_OF_MESSAGE = (
    ("expired", "expired"),
    ("deadline", "expired"),
    ("insufficient_output", "slippage"),
    ("insufficient output", "slippage"),
    ("slippage", "slippage"),
    ("allowance", "venue_reject"),
    ("exceeds balance", "insufficient_funds"),
    ("insufficient balance", "insufficient_funds"),
    ("transfer amount exceeds", "insufficient_funds"),
    ("testtoken: balance", "insufficient_funds"),
)


def refusal_reason(exc: ChainRevert) -> str:
    """The RejectReason name (lower case) of a decoded revert: "slippage" for a min-out or
    profit bound, "expired" for a deadline, "insufficient_funds" for a token balance too small,
    "venue_reject" for anything else (a failed require we have no row for, a panic, no data)."""
    named = REFUSAL_OF_ERROR.get(exc.error_name)
    if named is not None:
        return named
    if exc.error_name == "Error" and exc.revert_args:
        text = str(exc.revert_args[0]).lower()
        for needle, reason in REFUSAL_OF_MESSAGE:
            if needle in text:
                return reason
    return "venue_reject"
