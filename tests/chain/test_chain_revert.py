"""Revert data to typed errors: Error(string), Panic(uint256), custom errors from the ABIs,
and data that decodes to nothing is kept as hex rather than dropped."""

from __future__ import annotations

import pytest
from eth_abi import encode

from adapters.web3.calldata import encode_call
from adapters.web3.revert import RevertDecoder, selector
from basis_core.errors import ChainRevert, VenueError

pytestmark = pytest.mark.chain


def test_overflow_on_chain_decodes_as_panic_0x11(world, owner):
    data = encode_call("getAmountOut(uint256,uint256,uint256)", ["uint256"] * 3, [1 << 255, 1, 1])
    with pytest.raises(ChainRevert) as info:
        owner.call(world.pool_a, data)
    assert (info.value.error_name, info.value.revert_args) == ("Panic", (0x11,))
    assert "overflow" in str(info.value)
    assert isinstance(info.value, VenueError) and info.value.venue == "anvil" and info.value.code == "revert"


def test_decoder_reads_every_custom_error_of_the_compiled_contracts(decoder):
    assert set(decoder.error_names) >= {
        "NotOwner",
        "Expired",
        "LegBelowMin",
        "ProfitBelowMin",
        "BrokenPath",
        "UnknownToken",
        "InsufficientOutput",
    }
    raw = selector("LegBelowMin(uint256,uint256,uint256)") + encode(["uint256"] * 3, [1, 5, 9])
    err = decoder.decode(raw)
    assert (err.error_name, err.revert_args, err.data) == ("LegBelowMin", (1, 5, 9), "0x" + raw.hex())
    assert decoder.decode("0x" + raw.hex()).revert_args == (1, 5, 9)


def test_error_string_panic_empty_and_unknown_data():
    d = RevertDecoder()
    msg = bytes.fromhex("08c379a0") + encode(["string"], ["Pool: INSUFFICIENT_LIQUIDITY"])
    assert d.decode(msg).revert_args == ("Pool: INSUFFICIENT_LIQUIDITY",)
    assert d.decode(bytes.fromhex("4e487b71") + encode(["uint256"], [0x12])).revert_args == (0x12,)
    assert d.decode(None).error_name == "empty" and d.decode("0x").error_name == "empty"
    unknown = d.decode("0xdeadbeef" + "00" * 32)
    assert unknown.error_name == "unknown" and unknown.data == "0xdeadbeef" + "00" * 32
    truncated = d.decode(bytes.fromhex("08c379a0") + b"\x00" * 5)  # selector of Error, body broken
    assert truncated.error_name == "unknown" and truncated.data.startswith("0x08c379a0")
    assert d.decode("0x12").error_name == "unknown"
