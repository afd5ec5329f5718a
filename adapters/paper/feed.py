"""One live venue's public market data through ccxt, with no credentials.

    feed = PublicFeed("binance", config, kinds={"spot"})   # config: adapters/ccxt/config.py
    infos = await feed.start()            # markets loaded (public): our instruments' rules
    bids, asks = await feed.snapshot(name)           # one REST snapshot, (price, qty) best first
    async for bids, asks in feed.books(name): ...    # REST every poll_s, or ccxt.pro's book
    mark, index, rate = await feed.funding(name)     # a perp's mark, index and funding rate
    await feed.close()

The client is ccxt's own class for the exchange id (its ccxt.pro class with `market_data =
"ws"`), given no API key or secret: only public endpoints are called (markets, depth, the
depth stream, funding), so no request is ever signed. `base_url`, `ws_url` and `sandbox` move
it as they move the trading client (a local emulator, a testnet; a USDⓈ-M venue's streams
too, `adapters.ccxt.perps.stand_in`). ccxt's own rate limiter is on:
this client's few public requests are the only ones it makes. Every ccxt failure leaves as a
typed venue error (VenueUnavailable, RequestTimeout), its text naming the venue.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, Collection

import ccxt
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro

from adapters.ccxt.client import rewrite_urls
from adapters.ccxt.config import CcxtVenueConfig
from adapters.ccxt.parsing import instrument as instrument_info
from adapters.ccxt.perps import stand_in
from basis_core.errors import ConfigError, MalformedResponse, RequestTimeout, VenueUnavailable
from basis_core.venue import InstrumentInfo

Levels = list[tuple[float, float]]
#: levels per side taken from each book
DEPTH = 20
#: seconds between REST snapshots of one instrument (market_data = "rest")
POLL_S = 0.2


class PublicFeed:
    """Public market data of one ccxt venue (see module docstring)."""

    def __init__(
        self,
        venue: str,
        config: CcxtVenueConfig,
        kinds: Collection[str],
        *,
        poll_s: float = POLL_S,
        depth: int = DEPTH,
    ):
        self.venue, self.config, self.poll_s, self.depth = venue, config, poll_s, depth
        self.kinds = kinds
        self.requests = 0  # public calls made (snapshots, funding; markets once)
        self._ex = None

    def _client(self):
        cfg = self.config
        ws = cfg.market_data == "ws"
        cls = getattr(ccxt_pro if ws else ccxt_async, cfg.exchange, None)
        if cls is None:
            raise ConfigError(f"venues.{self.venue}.ccxt.exchange", f"ccxt has no exchange {cfg.exchange!r}")
        options: dict = {"fetchCurrencies": False, "fetchMargins": False}
        if cfg.exchange == "binance":  # only the market types the instruments need
            options["fetchMarkets"] = {
                "types": sorted({"spot" if k == "spot" else "linear" for k in self.kinds})
            }
        ex = cls({"enableRateLimit": True, "timeout": cfg.timeout_ms, "options": options})
        if cfg.sandbox:
            ex.set_sandbox_mode(True)
        if cfg.base_url:
            ex.urls["api"] = rewrite_urls(ex.urls["api"], cfg.base_url)
        ws_url = cfg.ws_url or (("ws" + cfg.base_url[4:]).rstrip("/") + "/ws" if cfg.base_url else "")
        if ws and ws_url and isinstance(ex.urls["api"].get("ws"), dict):
            ex.urls["api"]["ws"] = dict(ex.urls["api"]["ws"], spot=ws_url)
        stand_in(ex, cfg.exchange, cfg.base_url, ws_url if ws else "")  # a USDⓈ-M venue's streams
        return ex

    async def start(self) -> dict[str, InstrumentInfo]:
        """Load the venue's markets; the rules it lists for each of our instruments."""
        self._ex = ex = self._client()
        try:
            markets = await self._call(ex.load_markets)
        except BaseException:
            await self.close()
            raise
        out = {}
        for name, symbol in self.config.instruments.items():
            if symbol not in markets:
                await self.close()
                raise ConfigError(
                    f"venues.{self.venue}.ccxt.instruments.{name}",
                    f"{symbol} is not listed by {self.config.exchange}",
                )
            out[name] = instrument_info(self.venue, name, markets[symbol])
        return out

    async def close(self) -> None:
        ex, self._ex = self._ex, None
        if ex is not None:
            await ex.close()

    async def _call(self, fn, *args):
        self.requests += 1
        try:
            return await fn(*args)
        except ccxt.RequestTimeout as exc:
            raise RequestTimeout(self.venue, "timeout", str(exc)) from None
        except ccxt.BaseError as exc:
            raise VenueUnavailable(self.venue, type(exc).__name__, str(exc)) from None

    def _symbol(self, instrument: str) -> str:
        return self.config.instruments[instrument]

    async def snapshot(self, instrument: str) -> tuple[Levels, Levels]:
        """One REST snapshot of `instrument`'s book: (bids, asks), best first."""
        if self._ex is None:
            raise VenueUnavailable(self.venue, "not_started", "call start() first")
        raw = await self._call(self._ex.fetch_order_book, self._symbol(instrument), self.depth)
        return self._levels(raw)

    async def books(self, instrument: str) -> AsyncGenerator[tuple[Levels, Levels], None]:
        """`instrument`'s book after each change (ccxt.pro, "ws") or every `poll_s` ("rest")."""
        while self._ex is not None:
            if self.config.market_data == "ws":
                raw = await self._call(self._ex.watch_order_book, self._symbol(instrument))
                yield self._levels(raw)
            else:
                yield await self.snapshot(instrument)
                await asyncio.sleep(self.poll_s)

    async def funding(self, instrument: str) -> tuple[float, float, float]:
        """A perp's (mark, index, funding rate) from the venue's public funding endpoint."""
        if self._ex is None:
            raise VenueUnavailable(self.venue, "not_started", "call start() first")
        raw = await self._call(self._ex.fetch_funding_rate, self._symbol(instrument))
        try:
            mark, index = float(raw["markPrice"]), float(raw.get("indexPrice") or raw["markPrice"])
            rate = float(raw["fundingRate"])
        except (KeyError, TypeError, ValueError):
            raise MalformedResponse(self.venue, "malformed", "funding rate without mark/rate") from None
        return mark, index, rate

    def _levels(self, raw) -> tuple[Levels, Levels]:
        try:
            bids = [(float(p), float(q)) for p, q, *_ in raw["bids"][: self.depth]]
            asks = [(float(p), float(q)) for p, q, *_ in raw["asks"][: self.depth]]
        except (KeyError, TypeError, ValueError):
            raise MalformedResponse(self.venue, "malformed", "order book without bids/asks") from None
        if not all(math.isfinite(x) and x >= 0 for lv in bids + asks for x in lv):
            raise MalformedResponse(self.venue, "malformed", "order book with a non-finite or negative level")
        return bids, asks
