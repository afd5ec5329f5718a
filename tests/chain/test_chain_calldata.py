"""Deterministic calldata: fixed inputs give pinned bytes, equal to web3's own ABI encoding,
identical across processes; bad inputs are refused before anything is encoded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from web3 import Web3

from adapters.web3.calldata import Leg, encode_execute
from basis_core.errors import OrderRejected

pytestmark = pytest.mark.chain

LEGS = (
    Leg(
        "0x5FbDB2315678afecb367f032d93F642f64180aa3", "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512", 123456789
    ),
    Leg("0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0", "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9", 10**18),
)
ARGS = (5 * 10**18, 10**15, 1_900_000_000, 0x2A0)
PINNED = (
    "2d0a61d6"
    "00000000000000000000000000000000000000000000000000000000000000a0"
    "0000000000000000000000000000000000000000000000004563918244f40000"
    "00000000000000000000000000000000000000000000000000038d7ea4c68000"
    "00000000000000000000000000000000000000000000000000000000713fb300"
    "00000000000000000000000000000000000000000000000000000000000002a0"
    "0000000000000000000000000000000000000000000000000000000000000002"
    "0000000000000000000000005fbdb2315678afecb367f032d93f642f64180aa3"
    "000000000000000000000000e7f1725e7734ce288f8367e1bb143e90bb3f0512"
    "00000000000000000000000000000000000000000000000000000000075bcd15"
    "0000000000000000000000009fe46736679d2d9a65f0992f2272de9f3c7fa6e0"
    "000000000000000000000000cf7ed3acca5a467e9e704c703e8d87f634fb0fc9"
    "0000000000000000000000000000000000000000000000000de0b6b3a7640000"
)


def test_execute_calldata_for_fixed_inputs_is_pinned():
    assert encode_execute(LEGS, *ARGS).hex() == PINNED


def test_execute_calldata_equals_web3_contract_encoding_of_the_compiled_abi(artifacts):
    c = Web3().eth.contract(abi=list(artifacts["AtomicExecutor"].abi))
    legs = [(leg.pool, leg.token_in, leg.min_out) for leg in LEGS]
    assert c.encode_abi("execute", [legs, *ARGS[:3], ARGS[3].to_bytes(32, "big")]) == "0x" + PINNED


def test_execute_calldata_is_byte_identical_in_a_fresh_process():
    code = (
        "from adapters.web3.calldata import Leg, encode_execute\n"
        f"legs = {[(leg.pool.lower(), leg.token_in.upper().replace('0X', '0x'), leg.min_out) for leg in LEGS]!r}\n"
        f"print(encode_execute([Leg(*l) for l in legs], *{ARGS!r}).hex())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
        cwd=str(Path(__file__).parents[2]),
    )
    assert out.stdout.strip() == PINNED


@pytest.mark.parametrize(
    "bad",
    [
        dict(amount_in=1.5),
        dict(amount_in=-1),
        dict(amount_in=True),
        dict(min_profit=1 << 256),
        dict(deadline=1 << 64),
        dict(tag=b"x" * 33),
    ],
)
def test_bad_amounts_are_refused_with_bad_input(bad):
    kw = dict(amount_in=ARGS[0], min_profit=ARGS[1], deadline=ARGS[2], tag=ARGS[3]) | bad
    with pytest.raises(OrderRejected) as info:
        encode_execute(LEGS, **kw)
    assert info.value.reason == "bad_input"


@pytest.mark.parametrize(
    "pool,token,min_out",
    [
        ("0x5FbDB2315678afecb367f032d93F642f64180aa", LEGS[0].token_in, 1),  # 19 bytes
        ("5FbDB2315678afecb367f032d93F642f64180aa3", LEGS[0].token_in, 1),  # no 0x
        (LEGS[0].pool, "0xZZbDB2315678afecb367f032d93F642f64180aa3", 1),
        (LEGS[0].pool, LEGS[0].token_in, -5),
        (LEGS[0].pool, LEGS[0].token_in, float("nan")),
    ],
)
def test_bad_legs_are_refused_with_bad_input(pool, token, min_out):
    with pytest.raises(OrderRejected):
        Leg(pool, token, min_out)


def test_paths_outside_two_to_four_legs_are_refused():
    for n in (0, 1, 5):
        with pytest.raises(OrderRejected):
            encode_execute((LEGS * 3)[:n], *ARGS)
    assert len(encode_execute(LEGS * 2, *ARGS)) == 4 + 32 * 6 + 96 * 4
