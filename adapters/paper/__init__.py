"""Paper trading: live venues' public market data, our orders filled by the simulated matching
engine against it (`basis run --paper`).

    feed.py   PublicFeed: one ccxt venue's public endpoints (markets, order books by REST
              snapshots or ccxt.pro watch_order_book, perp funding) with no credentials
    world.py  PaperWorld: a SimWorld whose ccxt venues are simulated venues fed by their feeds
"""
