"""The one error table: every ccxt exception maps to a typed error, a retry class and a failure mode."""

from __future__ import annotations

import inspect

import ccxt
import pytest
from ccxt.base import errors as ccxt_errors

from adapters.ccxt.client import _retry_after, _venue_message
from adapters.ccxt.constants import ERRORS, VENUE_MESSAGES, rule_for
from basis_core import errors as E
from basis_core.schema import RejectReason
from basis_core.state.tables import EngineEvent, VenueEvent
from basis_ext import router as R

CCXT_ERRORS = [
    c for _, c in inspect.getmembers(ccxt_errors, inspect.isclass) if issubclass(c, ccxt.BaseError)
]


@pytest.mark.parametrize("cls", CCXT_ERRORS, ids=lambda c: c.__name__)
def test_every_ccxt_error_has_a_rule_with_a_typed_error(cls):
    rule = rule_for(cls("x"))
    assert rule is not None
    assert issubclass(rule.error, E.VenueError)
    assert 0 <= rule.fault <= R.FAULT_AUTH
    if rule.reason:
        assert rule.reason.upper() in RejectReason.__members__


@pytest.mark.parametrize(
    "cls,error,venue_event,engine_event,fault",
    [
        (ccxt.RequestTimeout, E.RequestTimeout, VenueEvent.TIMEOUT, None, R.FAULT_TIMEOUT),
        (
            ccxt.DDoSProtection,
            E.RateLimited,
            VenueEvent.RATE_LIMITED,
            EngineEvent.RATE_LIMITED,
            R.FAULT_RATE_LIMITED,
        ),
        (
            ccxt.RateLimitExceeded,
            E.RateLimited,
            VenueEvent.RATE_LIMITED,
            EngineEvent.RATE_LIMITED,
            R.FAULT_RATE_LIMITED,
        ),
        (ccxt.ExchangeNotAvailable, E.VenueUnavailable, VenueEvent.MAINTENANCE, None, R.FAULT_UNAVAILABLE),
        (ccxt.OnMaintenance, E.VenueUnavailable, VenueEvent.MAINTENANCE, None, R.FAULT_UNAVAILABLE),
        (ccxt.InsufficientFunds, E.OrderRejected, None, None, R.FAULT_REJECTED),
        (ccxt.OrderNotFound, E.OrderNotFound, None, None, R.FAULT_NOT_FOUND),
        (ccxt.AuthenticationError, E.AuthenticationFailed, VenueEvent.DISCONNECTED, None, R.FAULT_AUTH),
        (ccxt.PermissionDenied, E.AuthenticationFailed, VenueEvent.DISCONNECTED, None, R.FAULT_AUTH),
        (ccxt.NullResponse, E.MalformedResponse, None, None, R.FAULT_MALFORMED),
        (ccxt.OperationFailed, E.RequestTimeout, VenueEvent.TIMEOUT, None, R.FAULT_NETWORK),
    ],
)
def test_failure_modes_of_the_design(cls, error, venue_event, engine_event, fault):
    rule = rule_for(cls("x"))
    assert (rule.error, rule.venue_event, rule.engine_event, rule.fault) == (
        error,
        venue_event,
        engine_event,
        fault,
    )


def test_429_and_the_rate_limit_code_are_siblings_and_both_throttle():
    assert not issubclass(ccxt.DDoSProtection, ccxt.RateLimitExceeded)
    assert not issubclass(ccxt.RateLimitExceeded, ccxt.DDoSProtection)
    assert rule_for(ccxt.DDoSProtection("429")).error is rule_for(ccxt.RateLimitExceeded("-1003")).error


def test_refusal_reasons():
    assert rule_for(ccxt.InsufficientFunds("x")).reason == "insufficient_funds"
    assert rule_for(ccxt.OrderImmediatelyFillable("x")).reason == "post_only_would_cross"
    assert rule_for(ValueError("not ccxt")) is None
    assert set(ERRORS) <= set(CCXT_ERRORS)
    for code, reason in VENUE_MESSAGES.values():
        assert reason.upper() in RejectReason.__members__


def test_the_venue_message_is_read_from_ccxt_texts():
    assert (
        _venue_message('binance {"code":-1013,"msg":"Filter failure: NOTIONAL"}', "binance")
        == "Filter failure: NOTIONAL"
    )
    assert (
        _venue_message("binance Account has insufficient balance for requested action.", "binance")
        == "Account has insufficient balance for requested action."
    )
    assert (
        _venue_message(
            "binance order amount should be evenly divisible by lot size "
            '{"code":-1013,"msg":"Filter failure: LOT_SIZE"}',
            "binance",
        )
        == "Filter failure: LOT_SIZE"
    )
    assert _venue_message("binance {broken", "binance") == "{broken"


def test_retry_after_header():
    assert _retry_after({"Retry-After": "3"}) == 3.0
    assert _retry_after({"retry-after": "0.5"}) == 0.5
    assert _retry_after({"Retry-After": "soon"}) is None
    assert _retry_after({"Retry-After": "nan"}) is None
    assert _retry_after({"Retry-After": "-1"}) is None
    assert _retry_after(None) is None
