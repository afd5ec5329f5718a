"""Serve one ccxt venue of a config from a local exchange emulator on 127.0.0.1.

The emulator lists the venue's instruments (the config's tick, lot and min_notional), charges
the venue's maker and taker fees, funds our account with [venues.NAME].balances and plays the
config's generated market on its books: other participants' depth and trades, by wall time, so
two emulators of one config show the same market at the same moment. Fresh API credentials for
our account are written to the --secrets-out file (TOML, mode 0600), which the venue's
[venues.NAME.ccxt.credentials] secrets_file names. One line is printed once it listens:

    emulator NAME KIND listening on http://127.0.0.1:PORT

With --order-log FILE every order request (a submit or a cancel) is appended to FILE as one
JSON line, e.g. to check that no client order id was ever sent twice. It runs until SIGINT or
SIGTERM (exit 0). --kind spot speaks Binance spot REST (spot
instruments); --kind usdm Binance USDⓈ-M futures REST (perp instruments, ccxt binanceusdm).
A config or a venue it cannot serve is an error naming the key (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

NAME = "emulator"
HELP = "serve a ccxt venue of a config from a local exchange emulator (loopback)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", default="spot", metavar="KIND", help="spot | usdm (default: spot)")
    parser.add_argument(
        "--port", type=int, default=0, metavar="PORT", help="TCP port (default 0: a free one)"
    )
    parser.add_argument(
        "--config", required=True, metavar="CONFIG", help="the scenario TOML naming the venue"
    )
    parser.add_argument(
        "--venue", required=True, metavar="NAME", help="the [venues.NAME] (kind ccxt) to serve"
    )
    parser.add_argument(
        "--secrets-out",
        required=True,
        metavar="FILE",
        help="write our account's API key and secret here (0600)",
    )
    parser.add_argument(
        "--order-log",
        default=None,
        metavar="FILE",
        help="append one JSON line per order request (POST / DELETE): ts_ns, method, path, "
        "coid (the client order id), HTTP status",
    )
    parser.add_argument(
        "--seed", type=int, default=None, metavar="N", help="the market's seed (default: run.seed of CONFIG)"
    )


def main(args: argparse.Namespace) -> int:
    from adapters.ccxt.emulate import serve_venue, write_secrets

    from ..config import load
    from ..errors import ConfigError

    if not 0 <= args.port <= 65535:
        raise ConfigError("--port", f"must be in 0..65535, got {args.port}")
    served = serve_venue(load(args.config), args.venue, args.kind, args.seed)
    order_log = None
    if args.order_log:
        try:
            order_log = open(args.order_log, "a", buffering=1)  # noqa: SIM115 - closed below
        except OSError as exc:
            raise ConfigError("--order-log", f"cannot open {args.order_log}: {exc.strerror or exc}") from None
        out = order_log

        def log_order(entry: dict) -> None:
            out.write(json.dumps(entry) + "\n")

        served.emulator.order_log = log_order

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await served.start("127.0.0.1", args.port)
        except OSError as exc:  # the port is taken, or not ours to bind
            raise ConfigError(
                "--port", f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}"
            ) from None
        try:
            try:
                write_secrets(args.secrets_out, served.key, served.secret)
            except OSError as exc:
                raise ConfigError(
                    "--secrets-out", f"cannot write {args.secrets_out}: {exc.strerror or exc}"
                ) from None
            print(f"emulator {args.venue} {args.kind} listening on {served.url}", flush=True)
            market = asyncio.create_task(served.run_market())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({market, stopped}, return_when=asyncio.FIRST_COMPLETED)
            market.cancel()
            stopped.cancel()
            results = await asyncio.gather(market, stopped, return_exceptions=True)
            failure = next(
                (
                    r
                    for r in results
                    if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
                ),
                None,
            )
            if failure is not None:
                raise failure
        finally:
            await served.stop()

    try:
        asyncio.run(serve())
    finally:
        if order_log is not None:
            order_log.close()
    return 0
