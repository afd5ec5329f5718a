"""Simulated venues: matching engine, accounts, async venue, faults, market generator, scenarios.

    matching.py   one instrument's limit order book and matching (pure, synchronous)
    book.py       the order book's data structure: orders, FIFO queues per price
    queue.py      where other participants' cancels leave a level's queue (back | pro_rata)
    accounts.py   balances with free/locked in integer atoms; reserve, release, settle
    exchange.py   one venue's books + ledger + fees + perp positions (synchronous)
    clock.py      virtual-time event loop and clocks that drive the async venue
    venue.py      SimVenue: the `basis_core.venue.Venue` interface over an Exchange, with latency
    depth.py      participants' depth held outside the matching engine while none of ours rests
    transfers.py  transfers between simulated venues with delays and confirmations
    faults.py     deterministic fault schedule
    market.py     correlated mids, perp premium, moving depth, participants (generated)
    recorded.py   recorded books/trades from CSV or Parquet, and their replay
    world.py      SimWorld: all of the above built from a scenario config

matching.py, accounts.py and exchange.py use no asyncio and no venue interface: the HTTP
exchange emulator builds on them too.
"""
