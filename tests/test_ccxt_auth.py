"""Credentials and config of the ccxt venue: loaded from env or a 0600 file, never shown anywhere."""

from __future__ import annotations

import asyncio
import logging
import os
import pickle

import pytest

from adapters.ccxt import CcxtVenue, Credentials, CredentialsConfig, auth
from adapters.ccxt.config import from_dict
from adapters.emulator.harness import standard_emulator
from basis_core.errors import AuthenticationFailed, BasisError, ConfigError, OrderRejected

KEY, SECRET = "AKIA-venue-key-5c2e91", "sek-9f8e7d6c5b4a39281706"


def test_credentials_from_environment_variables_by_name():
    cfg = CredentialsConfig(api_key_env="BASIS_T_KEY", secret_env="BASIS_T_SECRET")
    cred = auth.load(cfg, {"BASIS_T_KEY": KEY, "BASIS_T_SECRET": SECRET})
    assert (cred.api_key, cred.secret) == (KEY, SECRET)
    with pytest.raises(ConfigError) as ei:
        auth.load(cfg, {"BASIS_T_KEY": KEY})
    assert ei.value.path == "credentials.secret_env" and "BASIS_T_SECRET" in str(ei.value)
    assert KEY not in str(ei.value)


def test_credentials_from_a_private_secrets_file(tmp_path):
    path = tmp_path / "venue.toml"
    path.write_text(f'api_key = "{KEY}"\nsecret = "{SECRET}"\n')
    os.chmod(path, 0o600)
    cred = auth.load(CredentialsConfig(secrets_file=str(path)), {})
    assert cred.secret == SECRET
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="readable by group or others"):
        auth.load(CredentialsConfig(secrets_file=str(path)), {})
    os.chmod(path, 0o600)
    path.write_text(f'api_key = "{KEY}"\nsecret = "{SECRET}\n')  # broken TOML
    with pytest.raises(ConfigError) as ei:
        auth.load(CredentialsConfig(secrets_file=str(path)), {})
    assert SECRET[:10] not in str(ei.value) and KEY not in str(ei.value)
    with pytest.raises(ConfigError, match="not found"):
        auth.load(CredentialsConfig(secrets_file=str(tmp_path / "missing.toml")), {})


def test_credentials_config_refuses_ambiguous_sources():
    with pytest.raises(ConfigError, match="not both"):
        from_dict({"credentials": {"api_key_env": "A", "secret_env": "B", "secrets_file": "/x"}})
    with pytest.raises(ConfigError, match="go together"):
        from_dict({"credentials": {"api_key_env": "A"}})
    with pytest.raises(ConfigError, match="no credentials configured"):
        auth.load(CredentialsConfig(), {})


def test_credentials_never_show_their_values():
    cred = Credentials(KEY, SECRET, "pass-phrase-77")
    for text in (str(cred), repr(cred), f"{cred}", repr([cred]), repr({"c": cred})):
        assert KEY not in text and SECRET not in text and "pass-phrase-77" not in text
    with pytest.raises(TypeError):
        pickle.dumps(cred)
    with pytest.raises(ConfigError):
        Credentials("", SECRET)


def test_redacting_filter_scrubs_messages_and_arguments(caplog):
    log = logging.getLogger("basis.test.redact")
    log.addFilter(auth.RedactingFilter((KEY, SECRET)))
    with caplog.at_level(logging.DEBUG, logger="basis.test.redact"):
        log.debug("headers %s body %s", {"X-MBX-APIKEY": KEY}, f"secret={SECRET}")
        log.info(f"inline {KEY}")
    assert KEY not in caplog.text and SECRET not in caplog.text and "***" in caplog.text


def test_config_errors_name_their_key_path():
    with pytest.raises(ConfigError) as ei:
        from_dict({"timeout_ms": 10}, "venues.binance")
    assert ei.value.path == "venues.binance.timeout_ms"
    with pytest.raises(ConfigError) as ei:
        from_dict({"instruments": {"BTCUSDT": "BTCUSDT"}})
    assert ei.value.path == "instruments.BTCUSDT"
    with pytest.raises(ConfigError) as ei:
        from_dict({"base_url": "http://x", "sandbox": True})
    assert ei.value.path == "sandbox"
    with pytest.raises(ConfigError) as ei:
        from_dict({"endpoints": {"order": {"nope": 1}}})
    assert ei.value.path.startswith("endpoints.")
    with pytest.raises(ConfigError) as ei:
        from_dict({"pools": {"w": {"limit": 10, "window_s": 1, "burst": 2}}})
    assert ei.value.path == "pools.w.burst"


def test_a_weight_that_can_never_fit_is_a_config_error():
    cfg = from_dict(
        {
            "pools": {
                "weight_1m": {"limit": 100, "window_s": 60, "burst": 0.1},
                "orders_10s": {"limit": 10, "window_s": 10},
                "orders_1d": {"limit": 1000, "window_s": 86400},
            }
        }
    )
    with pytest.raises(ConfigError, match="could never be sent"):
        CcxtVenue("x", cfg, Credentials(KEY, SECRET))  # markets weighs 20 > burst 10


def test_key_and_secret_never_reach_logs_errors_or_reprs(caplog):
    """A full session at DEBUG, including refused requests: neither value appears anywhere."""

    async def body():
        emu = standard_emulator({KEY: (SECRET, "alice")})
        await emu.start()
        cfg = from_dict({"base_url": emu.url, "timeout_ms": 500, "instruments": {"BTCUSDT": "BTC/USDT"}})
        texts = []
        v = CcxtVenue("emu", cfg, Credentials(KEY, SECRET))
        try:
            await v.start()
            await v.balances()
            from basis_core.schema import OrderType, Side
            from basis_core.venue import OrderRequest

            await v.submit(OrderRequest("77", "BTCUSDT", Side.BUY, OrderType.LIMIT, 0.001, 40000.0))
            try:
                await v.submit(OrderRequest("78", "BTCUSDT", Side.BUY, OrderType.LIMIT, 9.0, 40000.0))
            except OrderRejected as err:
                texts += [str(err), repr(err), repr(err.args)]
            emu._secrets[KEY] = "rotated-elsewhere"  # now every signature fails
            try:
                await v.balances()
            except AuthenticationFailed as err:
                texts += [str(err), repr(err), repr(err.args)]
            texts += [repr(v), str(v), repr(v.config), repr(cfg.credentials)]
        finally:
            await v.close()
            await emu.stop()
        return texts

    with caplog.at_level(logging.DEBUG):
        texts = asyncio.run(body())
    assert len(texts) >= 10
    assert any("Account has insufficient balance" in t for t in texts)  # the errors did carry detail
    assert "basis.ccxt.emu" in {r.name for r in caplog.records}  # ccxt's debug log was captured
    everything = "\n".join(texts) + caplog.text
    assert KEY not in everything and SECRET not in everything


def test_every_typed_error_is_a_basis_error():
    assert issubclass(AuthenticationFailed, BasisError)


def test_a_shared_logger_redacts_the_secrets_of_every_client(caplog):
    log = logging.getLogger("basis.test.shared")
    auth.RedactingFilter.install(log, ("first-key-123",))
    auth.RedactingFilter.install(log, ("second-key-456",))
    with caplog.at_level(logging.DEBUG, logger="basis.test.shared"):
        log.debug("%s %s", "first-key-123", "second-key-456")
    assert "first-key-123" not in caplog.text and "second-key-456" not in caplog.text
    assert sum(isinstance(f, auth.RedactingFilter) for f in log.filters) == 1
