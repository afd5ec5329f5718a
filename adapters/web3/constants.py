"""Constants of the EVM venue family: ABI selectors, compiler settings, policy defaults."""

from __future__ import annotations

#: EVM fork the contracts are compiled for (solc-js would otherwise pick its newest default)
EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 200

#: selector of the built-in `Error(string)` revert (require/revert with a message)
ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
#: selector of the built-in `Panic(uint256)` revert (assert, overflow, division by zero...)
PANIC_SELECTOR = bytes.fromhex("4e487b71")
#: Solidity panic codes, by number
PANIC_CODES = {
    0x00: "generic",
    0x01: "assert",
    0x11: "arithmetic overflow/underflow",
    0x12: "division by zero",
    0x21: "bad enum value",
    0x22: "bad storage byte array",
    0x31: "pop on empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "zero internal function",
}

#: the ABI signature of AtomicExecutor.execute
EXECUTE_SIGNATURE = "execute((address,address,uint256)[],uint256,uint256,uint256,bytes32)"

#: gas for a plain 0-value transfer (the cancellation transaction)
TRANSFER_GAS = 21_000
#: a replacement must raise both fee fields by at least this fraction (geth: 10%)
REPLACEMENT_BUMP_NUM, REPLACEMENT_BUMP_DEN = 1125, 1000

GWEI = 10**9

#: eth_sendRawTransaction refusals. Nodes answer all of them with the generic JSON-RPC code
#: -32000 (geth, anvil, erigon alike), so the message text is the only discriminator; this one
#: table maps it to our codes, in order of precedence.
SEND_REFUSALS = (
    ("already known", "already_known"),  # the node has this exact transaction
    ("already imported", "already_known"),  # (anvil's wording)
    ("nonce too low", "nonce_too_low"),
    ("nonce has already been used", "nonce_too_low"),
    ("replacement transaction underpriced", "underpriced"),
    ("underpriced", "underpriced"),
    ("insufficient funds", "insufficient_funds"),
    ("max fee per gas less than block base fee", "fee_below_base"),
    ("exceeds block gas limit", "gas_limit"),
)


def send_refusal_code(message: str) -> str:
    """Our code for a node's refusal message ("rejected" when the table has no match)."""
    text = message.lower()
    for needle, code in SEND_REFUSALS:
        if needle in text:
            return code
    return "rejected"
