"""The signing key comes from the environment or a keystore and never shows: not in the repr
or str of the client, its config or its signer, not in any error raised, not in the logs."""

from __future__ import annotations

import json
import logging
import pickle
import traceback

import pytest
from chainkit import DEV_KEYS, rpc
from eth_account import Account

from adapters.web3.arbitrage import plan_two_pool
from adapters.web3.auth import Signer
from adapters.web3.client import EvmClient
from adapters.web3.config import Web3VenueConfig, load
from adapters.web3.execution import AtomicTrader, plan_path
from basis_core.errors import ConfigError, GasCapExceeded, OrderRejected, VenueError, VenueUnavailable

pytestmark = pytest.mark.chain

KEY = DEV_KEYS[0]
FORMS = (KEY, KEY[2:], KEY[2:].upper(), KEY[2:34], KEY[34:])  # whole key and each half


def _assert_clean(*texts: str) -> None:
    for text in texts:
        for form in FORMS:
            assert form.lower() not in text.lower(), "private key material leaked"


def _error_texts(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


def test_key_from_environment_never_appears_in_client_config_or_signer(world, decoder, caplog):
    cfg = Web3VenueConfig(rpc_url=world.url, chain_id=31337, name="anvil", key_env="BASIS_WEB3_KEY")
    with caplog.at_level(logging.DEBUG):
        c = EvmClient.from_config(cfg, env={"BASIS_WEB3_KEY": KEY}, abis=())
        c.wait(c.send(c.address, b"", gas=21_000))
    assert c.address == world.owner
    _assert_clean(
        str(c),
        repr(c),
        str(cfg),
        repr(cfg),
        repr(c.signer),
        str(c.signer),
        repr(vars(c)),
        repr(c.nonces.inflight()),
        caplog.text,
    )
    with pytest.raises(TypeError):
        pickle.dumps(c.signer)


def test_errors_raised_while_trading_carry_no_key(world, decoder):
    cfg = Web3VenueConfig(rpc_url=world.url, chain_id=31337, name="anvil", max_gas=40_000)
    c = EvmClient.from_config(cfg, env={"BASIS_WEB3_KEY": KEY}, abis=[])
    c.decoder = decoder
    plan, _ = plan_two_pool(c, world.pool_a, world.pool_b, world.y, deadline=2**40)
    trader = AtomicTrader(c, world.executor)
    with pytest.raises(GasCapExceeded) as gas_err:
        trader.execute(plan)
    res = trader.execute(plan_path(plan.legs, plan.amount_in, 10**30, plan.deadline))
    assert res.reason.error_name == "ProfitBelowMin"
    _assert_clean(*_error_texts(gas_err.value), *_error_texts(res.reason), repr(res))


@pytest.mark.parametrize(
    "value",
    [
        KEY[:-1],  # one nibble short
        KEY[:-1] + "g",  # not hex
        "0x" + "0" * 64,  # hex, but not a valid secp256k1 key
        KEY + "00",  # too long
    ],
)
def test_malformed_keys_fail_with_a_config_error_that_does_not_echo_them(value):
    cfg = Web3VenueConfig(key_env="MY_KEY")
    with pytest.raises(ConfigError) as info:
        Signer.from_config(cfg, env={"MY_KEY": value})
    assert "MY_KEY" in str(info.value)
    for text in _error_texts(info.value):
        assert value[2:20].lower() not in text.lower()
        _assert_clean(text)


def test_missing_environment_variable_names_the_variable():
    with pytest.raises(ConfigError) as info:
        Signer.from_config(Web3VenueConfig(key_env="NOPE_KEY"), env={})
    assert "NOPE_KEY" in str(info.value) and info.value.path == "key_env"


def test_keystore_file_with_password_from_environment(tmp_path, world, decoder):
    blob = Account.encrypt(KEY, "correct horse", kdf="pbkdf2", iterations=2)
    path = tmp_path / "key.json"
    path.write_text(json.dumps(blob))
    cfg = load(
        {"rpc_url": world.url, "keystore": str(path), "keystore_password_env": "KS_PW", "name": "anvil"}
    )
    c = EvmClient(cfg, Signer.from_config(cfg, env={"KS_PW": "correct horse"}), decoder)
    assert c.address == world.owner and c.wait(c.send(c.address, b"", gas=21_000)).ok
    _assert_clean(repr(c), repr(cfg), str(cfg))
    with pytest.raises(ConfigError) as info:
        Signer.from_config(cfg, env={"KS_PW": "wrong"})
    assert "KS_PW" in str(info.value) and "correct horse" not in str(info.value)
    _assert_clean(*_error_texts(info.value))
    with pytest.raises(ConfigError):
        Signer.from_config(cfg, env={})
    path.write_text("{not json")
    with pytest.raises(ConfigError):
        Signer.from_config(cfg, env={"KS_PW": "correct horse"})


def test_config_rejects_bad_fields_by_key_path():
    with pytest.raises(ConfigError) as info:
        load({"rpc_url": "ftp://x"}, "venues.chain")
    assert info.value.path == "venues.chain.rpc_url"
    with pytest.raises(ConfigError) as info:
        load({"max_fee_gwei": 1.0, "max_priority_fee_gwei": 2.0}, "venues.chain")
    assert info.value.path == "venues.chain.max_priority_fee_gwei"
    with pytest.raises(ConfigError) as info:
        load({"private_key": KEY}, "venues.chain")  # no place for a key in the config
    assert "unknown key" in str(info.value)
    _assert_clean(*_error_texts(info.value))


def test_wrong_chain_id_is_refused_before_anything_is_signed(world, decoder):
    cfg = Web3VenueConfig(rpc_url=world.url, chain_id=1)
    with pytest.raises(ConfigError) as info:
        EvmClient(cfg, Signer.from_hex(KEY), decoder)
    assert info.value.path == "chain_id" and "31337" in str(info.value)
    assert rpc(world.url, "eth_chainId") == hex(31337)


def test_api_key_in_the_endpoint_url_stays_out_of_reprs_errors_and_logs(world, decoder, caplog):
    secret = "k3y0fTheHostedProvider"
    cfg = Web3VenueConfig(rpc_url=f"{world.url}/?apikey={secret}", chain_id=31337, name="anvil")
    with caplog.at_level(logging.DEBUG):
        c = EvmClient(cfg, Signer.from_hex(KEY), decoder)  # the key rides in the query
        c.wait(c.send(c.address, b"", gas=21_000))
        c.call_many([(world.y, bytes.fromhex("18160ddd"))])  # totalSupply(), batched
        wrong_path = EvmClient(
            Web3VenueConfig(rpc_url=f"{world.url}/v3/{secret}"), None, decoder, check_chain=False
        )
        with pytest.raises(VenueError) as not_found:  # anvil answers 404 here
            wrong_path.block_number()
        dead = EvmClient(
            Web3VenueConfig(rpc_url=f"http://127.0.0.1:9/v3/{secret}"), None, decoder, check_chain=False
        )
        with pytest.raises(VenueUnavailable) as info:
            dead.block_number()
    assert not_found.value.code == "http_404"
    texts = [
        repr(c),
        str(c),
        repr(cfg),
        repr(dead),
        *_error_texts(info.value),
        *_error_texts(not_found.value),
        caplog.text,
    ]
    assert "127.0.0.1" in repr(c) and "/***" in repr(c)
    assert not [t for t in texts if secret in t]
    assert "Making request" in caplog.text  # the logs were there, redacted


def test_signing_a_malformed_transaction_is_a_typed_refusal_without_key_material():
    signer = Signer.from_hex(KEY)
    with pytest.raises(OrderRejected) as info:
        signer.sign({"type": 2, "chainId": 1, "nonce": -1, "gas": 21_000, "to": "0x12"})
    assert info.value.reason == "bad_input"
    _assert_clean(*_error_texts(info.value))
