"""Start a local chain for a config's web3 venue and write where everything is.

Starts anvil on 127.0.0.1:PORT (the npm package scripts/bootstrap installs into
tools/node_modules), builds the Solidity sources with solc-js, deploys a test token per asset,
a constant-product pool per instrument of the config's web3 venue (seeded with --pool-base of
its base at market.start_price moved by --offset-bps) and an atomic executor, and funds a new
account with the venue's balances. FILE gets a TOML fragment (RPC URL, chain id, executor,
pools, tokens) for the venue's `[venues.NAME.web3] chain_file`; FILE.keystore.json the
account's key, encrypted with the password in the environment variable --password-env (the key
is never printed). --block-time S mines a block every S seconds (a pool's book is derived again
at each head: the two-pool example needs heads to see its pools again after a trade). The node runs until interrupted (Ctrl-C) or for --for seconds; then
`basis run CONFIG` in another terminal trades against it.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

NAME = "devchain"
HELP = "start a local chain (anvil) with the pools of a config's web3 venue"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, metavar="CONFIG", help="TOML config with one web3 venue")
    parser.add_argument("--out", required=True, metavar="FILE", help="write the chain fragment here")
    parser.add_argument("--port", type=int, default=8545, help="anvil's port on 127.0.0.1 (default 8545)")
    parser.add_argument("--pool-base", type=float, default=100.0, help="base units in each pool (100)")
    parser.add_argument(
        "--offset-bps", type=float, default=-80.0, help="pool price vs market.start_price (-80)"
    )
    parser.add_argument(
        "--block-time",
        type=int,
        default=0,
        metavar="S",
        help="a block every S seconds, as a real chain (0: one block per transaction, at once)",
    )
    parser.add_argument(
        "--password-env",
        default="BASIS_WEB3_KEYSTORE_PASSWORD",
        metavar="VAR",
        help="environment variable holding the keystore's password",
    )
    parser.add_argument(
        "--for", dest="for_s", type=float, default=0.0, metavar="S", help="stop after S seconds (0: never)"
    )


def main(args: argparse.Namespace) -> int:
    from adapters.web3.devchain import deploy, mine_every, start_anvil, write_keystore

    from ..config import load
    from ..errors import ConfigError

    cfg = load(args.config)
    password = os.environ.get(args.password_env)
    if not password:
        raise ConfigError("keystore_password_env", f"environment variable {args.password_env} is not set")
    out = Path(args.out)
    keystore = out.with_name(out.name + ".keystore.json")
    node = start_anvil(args.port)
    try:
        chain = deploy(node.url, cfg, pool_base=args.pool_base, offset_bps=args.offset_bps)
        assert chain.signer is not None
        write_keystore(chain.signer, keystore, password)
        if args.block_time > 0:  # deployed at once; from now on, a block every S seconds
            mine_every(node.url, args.block_time)
        out.write_text(chain.fragment(str(keystore.resolve()), args.password_env))
        print(f"anvil at {node.url} (chain 31337), account {chain.account}")
        for inst, pool in chain.pools.items():
            print(f"  pool {inst}: {pool}")
        print(f"  executor: {chain.executor}")
        print(f"wrote {out} and {keystore}; now: basis run {args.config}")
        print("stop with Ctrl-C", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        end = time.monotonic() + args.for_s if args.for_s > 0 else float("inf")
        while node.proc.poll() is None and time.monotonic() < end:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        node.stop()
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the node like Ctrl-C
