"""A run's world with pools on an EVM node beside the simulated venues (mixed CEX-DEX runs).

    world = ChainWorld.from_config(cfg, clients={"dex": client},
                                   pools={"dex-BTCUSDT": PoolAddresses(pool, base_token, quote_token)})
    runner = asyncio.run(run_scenario(cfg, run_dir, world, layout="single"))

The simulated venues (`[venues.NAME] kind = "sim"`) come from `SimWorld`, or from the `base`
world given (`basis run` passes its CcxtWorld when the config also has ccxt venues: sim, ccxt
and web3 venues in one run); every venue of kind "web3" becomes a `Web3Venue` over the `EvmClient` given for it, with one `PoolMarket` per
instrument of that venue. The world has what `run_scenario` uses: `venues`, `clock`, `start()`,
`close()`, `start_market()` (the simulated market; pools move only by swaps) and `digest()`.

`ChainWorld.from_run_config(cfg)` is what `basis run` does: every web3 venue's
`[venues.NAME.web3]` table (adapters/web3/config.py) gives its endpoint, chain id, key source,
gas policy, pools and tokens; the client is made from it (the chain id checked against the
node: a mismatch is a ConfigError naming `venues.NAME.web3.chain_id`), and each token's
decimals are checked at start (`venues.NAME.web3.tokens.ASSET.decimals`). The key is read
from its environment variable or keystore and held only by the client's signer.

What the config must say, checked here (ConfigError with the key path otherwise):

* `run.clock = "real"`: a chain node keeps real time, a virtual clock cannot drive it;
* each web3 venue has a client whose venue name is the venue's name, and charges its fees in
  ETH (`fee_asset = "ETH"`, `fee_asset_price` > 0): a swap's fee is the gas it burned, and the
  ledger values it at that price; the pool's own fee is inside its prices, so `taker_fee_bps`
  is what the engine adds on top (0 for the pool alone);
* with the table's `executor` and two pools on one base/quote pair, a BUY on one and a SELL
  on the other sent together (`[policy] dispatch = "simultaneous"`) are one executor call
  (the two-pool atomic path, venue.py);
* each of its instruments is spot and has pool addresses; once the venue has read its tokens'
  decimals (`start()`), the instrument's lot must be a whole number of base-token units, its
  tick at least the venue's, its min_notional at least the venue's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal

from adapters.sim.world import SimWorld
from basis_core.config import Config
from basis_core.errors import ConfigError

from .auth import Signer, safe_url
from .bundle import BundleRelay
from .client import EvmClient
from .config import ChainTableConfig, load_table
from .revert import RevertDecoder
from .venue import PoolMarket, Web3Venue

#: the asset a web3 venue's fills carry their gas cost in
GAS_ASSET = "ETH"


@dataclass(frozen=True)
class PoolAddresses:
    """Where an instrument of a web3 venue trades: the pool and its base / quote ERC-20s."""

    pool: str
    base_token: str
    quote_token: str
    #: (decimals, config key) the tokens must answer at start; None: not checked
    base_decimals: tuple[int, str] | None = None
    quote_decimals: tuple[int, str] | None = None


class ChainWorld:
    """Simulated venues plus web3 pool venues, one world for `run_scenario` (see module docstring)."""

    def __init__(self, sim, chain: dict[str, Web3Venue], cfg: Config):
        """`sim`: the world of every other venue (a SimWorld, or a CcxtWorld with its SimWorld):
        venues, clock, start, close, start_market, digest."""
        clash = set(sim.venues) & set(chain)
        if clash:
            raise ConfigError("venues", f"{', '.join(sorted(clash))} built twice")
        self.cfg, self.sim, self.chain = cfg, sim, dict(chain)
        self.venues = {**sim.venues, **chain}
        self.clock = sim.clock

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        clients: dict[str, EvmClient],
        pools: dict[str, PoolAddresses],
        poll_s: float = 0.05,
        slippage_bps: int = 50,
        tables: dict[str, ChainTableConfig] | None = None,
        base=None,
    ) -> ChainWorld:
        if cfg.run.clock != "real":
            raise ConfigError(
                "run.clock", "a run with web3 venues needs the real clock (the chain keeps real time)"
            )
        web3 = [name for name, v in cfg.venues.items() if v.kind == "web3"]
        for name in clients:
            if name not in web3:
                raise ConfigError(
                    f"venues.{name}", "a client was given for it, but it is not a venue of kind web3"
                )
        chain = {}
        for name in web3:
            vcfg = cfg.venues[name]
            client = clients.get(name)
            if client is None:
                raise ConfigError(f"venues.{name}", "a web3 venue needs an EVM client (none given)")
            if client.venue != name:
                raise ConfigError(f"venues.{name}", f"the client given for it is named {client.venue!r}")
            if vcfg.fee_asset != GAS_ASSET or not vcfg.fee_asset_price > 0:
                raise ConfigError(
                    f"venues.{name}.fee_asset",
                    f"a web3 venue pays gas in {GAS_ASSET}: set fee_asset = {GAS_ASSET!r} and its price",
                )
            markets = []
            for iname, inst in cfg.instruments.items():
                if inst.venue != name:
                    continue
                if inst.kind != "spot":
                    raise ConfigError(f"instruments.{iname}.kind", "a pool trades spot only")
                where = pools.get(iname)
                if where is None:
                    raise ConfigError(
                        f"instruments.{iname}", "no pool addresses given for this web3 instrument"
                    )
                markets.append(
                    PoolMarket(
                        iname,
                        where.pool,
                        where.base_token,
                        where.quote_token,
                        inst.base,
                        inst.quote,
                        where.base_decimals,
                        where.quote_decimals,
                    )
                )
            if not markets:
                raise ConfigError(f"venues.{name}", "a web3 venue needs at least one instrument")
            table = (tables or {}).get(name)
            chain[name] = Web3Venue(
                client,
                markets,
                slippage_bps=table.slippage_bps if table else slippage_bps,
                poll_s=table.poll_ms / 1e3 if table else poll_s,
                confirmations=table.confirmations if table else 1,
                ws_url=table.ws_url if table else "",
                head_timeout_s=table.head_timeout_s if table else 0.0,
                relay=_relay(table, client),
                bundle_blocks=table.bundle_blocks if table else 3,
                executor=table.executor if table else "",
            )
        unknown = set(pools) - {i for i, c in cfg.instruments.items() if c.venue in chain}
        if unknown:
            raise ConfigError(
                "instruments",
                f"pool addresses for {', '.join(sorted(unknown))}, which are not instruments of a web3 venue",
            )
        return cls(base if base is not None else SimWorld.from_config(cfg), chain, cfg)

    @classmethod
    def from_run_config(cls, cfg: Config, env=None, abis=None, base=None) -> ChainWorld:
        """The world `basis run` drives: every web3 venue built from its `[venues.NAME.web3]`
        table (see the module docstring); `env` holds the key's variables (default: the
        process environment); `abis` the contracts whose custom errors reverts are decoded
        with (default: this package's contracts, when solc-js can build them); `base` the
        world of the other venues (default: the simulated ones)."""
        if cfg.run.clock != "real":
            raise ConfigError(
                "run.clock", "a run with web3 venues needs the real clock (the chain keeps real time)"
            )
        if abis is None:
            abis = _contract_abis()
        tables, clients, pools = {}, {}, {}
        for name, vcfg in cfg.venues.items():
            if vcfg.kind != "web3":
                continue
            path = f"venues.{name}.web3"
            if not vcfg.web3:
                raise ConfigError(path, "a web3 venue needs its [venues.NAME.web3] table")
            table = tables[name] = load_table(vcfg.web3, path, cfg.base_dir)
            for iname, inst in cfg.instruments.items():
                if inst.venue != name:
                    continue
                pool = table.pools.get(iname)
                if pool is None:
                    raise ConfigError(f"{path}.pools", f"no pool address for instrument {iname}")
                ends = []
                for asset in (inst.base, inst.quote):
                    tok = table.tokens.get(asset)
                    if tok is None:
                        raise ConfigError(f"{path}.tokens", f"no token address for {asset} ({iname})")
                    ends.append((tok.address, (tok.decimals, f"{path}.tokens.{asset}.decimals")))
                pools[iname] = PoolAddresses(pool, ends[0][0], ends[1][0], ends[0][1], ends[1][1])
            unknown = set(table.pools) - set(pools)
            if unknown:
                raise ConfigError(f"{path}.pools.{sorted(unknown)[0]}", f"not an instrument of venue {name}")
            clients[name] = _client(table, name, path, env, abis)
        return cls.from_config(cfg, clients, pools, tables=tables, base=base)

    # -- what run_scenario uses --------------------------------------------------------------

    async def start(self) -> None:
        """Start the simulated venues, then the pools (token decimals, approvals), then check
        the config's instrument rules against what the pools can trade."""
        await self.sim.start()
        for venue in self.chain.values():
            await venue.start()
            self.check_rules(venue)

    def check_rules(self, venue: Web3Venue) -> None:
        infos = venue.instruments()
        for iname, info in infos.items():
            inst, path = self.cfg.instruments[iname], f"instruments.{iname}"
            units = Decimal(repr(inst.lot)) / Decimal(repr(info.lot))
            if units < 1 or units != units.to_integral_value():
                raise ConfigError(
                    f"{path}.lot",
                    f"{inst.lot:g} is not a whole number of the pool's base units ({info.lot:g})",
                )
            if inst.tick < info.tick:
                raise ConfigError(f"{path}.tick", f"{inst.tick:g} is finer than the pool's {info.tick:g}")
            if inst.min_notional < info.min_notional:
                raise ConfigError(f"{path}.min_notional", f"below the pool's {info.min_notional:g}")

    async def close(self) -> None:
        try:
            for venue in self.chain.values():
                await venue.close()
        finally:
            await self.sim.close()

    def start_market(self, hold: bool = False) -> asyncio.Task:
        return self.sim.start_market(hold=hold)

    def digest(self) -> str:
        """The other venues' digest (a chain's events are not replayable by seed)."""
        return self.sim.digest()


def _contract_abis() -> list:
    """The ABIs of this package's contracts (their custom errors decode reverts); none when
    solc-js is not installed (reverts are then shown as raw data, still typed)."""
    from basis_core.errors import ToolMissing

    from .compile import compile_contracts

    try:
        return [a.abi for a in compile_contracts().values()]
    except ToolMissing:
        return []


def describe_tables(cfg: Config) -> list[str]:
    """Each web3 venue's `[venues.NAME.web3]` table checked as a run builds it (its chain_file
    read; the node not asked, the key named, not read), one line per venue; ConfigError names
    a bad key."""
    out = []
    for name, vcfg in cfg.venues.items():
        if vcfg.kind != "web3":
            continue
        path = f"venues.{name}.web3"
        if not vcfg.web3:
            raise ConfigError(path, "a web3 venue needs its [venues.NAME.web3] table")
        t = load_table(vcfg.web3, path, cfg.base_dir)
        key = f"keystore {t.keystore}" if t.keystore else f"${t.key_env}"
        route = (
            f"bundles through {safe_url(t.relay_url)} for {t.bundle_blocks} block(s)"
            if t.relay_url
            else "the public mempool"
        )
        out.append(
            f"{path}: chain {t.chain_id}, {len(t.pools)} pool(s), {t.confirmations} confirmation(s), "
            f"swaps by {route}, key from {key}"
        )
    return out


def _relay(table: ChainTableConfig | None, client: EvmClient) -> BundleRelay | None:
    """The bundle relay a venue's table names (None: the public mempool), signed by its
    account."""
    if table is None or not table.relay_url or client.signer is None:
        return None
    return BundleRelay(table.relay_url, client.venue, client.signer, client.decoder, table.request_timeout_s)


def _client(table: ChainTableConfig, name: str, path: str, env, abis) -> EvmClient:
    """An EvmClient for venue `name` from its table: key from the environment or keystore,
    chain id checked against the node. Every ConfigError names its key under `path`; none
    carries the key."""
    try:
        ccfg = table.client_config(name, path)
        signer = Signer.from_config(ccfg, env)
        return EvmClient(ccfg, signer, RevertDecoder(abis, name))
    except ConfigError as exc:
        key = exc.path if exc.path.startswith(path) else f"{path}.{exc.path}"
        raise ConfigError(key, exc.message) from None
