"""Simulated venues: matching engine, accounts, async venue, faults, market generator, scenarios.

    matching.py   one instrument's limit order book and matching (pure, synchronous)
    accounts.py   balances with free/locked in integer atoms; reserve, release, settle
    exchange.py   one venue's instruments + accounts + fees + perp positions (synchronous)
    clock.py      virtual and real clocks that drive the async venue
    venue.py      SimVenue: the `adapters.base.Venue` interface over an Exchange, with latency
    faults.py     deterministic fault schedule
    market.py     correlated prices, moving depth, participants; CSV book/trade loading
"""
