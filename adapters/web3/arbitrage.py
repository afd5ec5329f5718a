"""DEX-DEX arbitrage planning: read two pools, size with the AMM kernel, build an atomic plan.

`plan_two_pool(client, pool_a, pool_b, token, ...)` reads both pools' reserves at the latest
block, sizes the input of `token` into pool A (token -> other) whose output is sold into pool
B (other -> token) with basis_core.kernels.amm (the exact integer pool math, so the predicted
profit is what the contract will pay at these reserves), and sets each leg's minimum output
from the expected output and the slippage cap. Returns None when no input is profitable.
"""

from __future__ import annotations

from dataclasses import dataclass

from basis_core.errors import OrderRejected
from basis_core.kernels import amm

from .calldata import Leg, address, encode_call
from .client import EvmClient
from .execution import TradePlan, plan_path


@dataclass(frozen=True)
class PoolState:
    pool: str
    token0: str
    token1: str
    reserve0: int
    reserve1: int
    block_number: int

    def reserves_for(self, token_in: str) -> tuple[int, int]:
        """(reserve_in, reserve_out) when selling `token_in`."""
        if token_in == self.token0:
            return self.reserve0, self.reserve1
        if token_in == self.token1:
            return self.reserve1, self.reserve0
        raise OrderRejected("evm", "bad_input", f"{token_in} is not in pool {self.pool}", reason="bad_input")

    def other(self, token: str) -> str:
        self.reserves_for(token)
        return self.token1 if token == self.token0 else self.token0


_POOL_GETTERS = ("token0()", "token1()", "reserve0()", "reserve1()")


def read_pools(client: EvmClient, pools, block: int | str = "latest") -> list[PoolState]:
    """Tokens and reserves of each pool at one block, in a single JSON-RPC batch."""
    pools = [address(p, "pool") for p in pools]
    at = client.block_number() if block == "latest" else block
    if not isinstance(at, int):
        raise ValueError(f"block must be a block number or 'latest', got {block!r}")
    words = client.call_many([(p, encode_call(g, [], [])) for p in pools for g in _POOL_GETTERS], at)
    out = []
    for i, p in enumerate(pools):
        w = words[4 * i : 4 * i + 4]
        if any(len(x) < 32 for x in w):
            raise OrderRejected(
                client.venue, "bad_input", f"{p} does not answer like a pool", reason="bad_input"
            )
        out.append(
            PoolState(
                p,
                address(w[0][12:32], "token0"),
                address(w[1][12:32], "token1"),
                int.from_bytes(w[2][:32], "big"),
                int.from_bytes(w[3][:32], "big"),
                at,
            )
        )
    return out


def read_pool(client: EvmClient, pool: str, block: int | str = "latest") -> PoolState:
    """The pool's tokens and reserves at `block` (one consistent block for all four reads)."""
    return read_pools(client, [pool], block)[0]


@dataclass(frozen=True)
class TwoPoolQuote:
    amount_in: int
    mid_out: int  # output of leg 0 (the other token)
    final_out: int  # output of leg 1 (back in `token`)
    block_number: int

    @property
    def profit(self) -> int:
        return self.final_out - self.amount_in


def quote_two_pool(a: PoolState, b: PoolState, token: str, max_in: int | None = None) -> TwoPoolQuote | None:
    """Kernel-sized best input of `token` through A then B, capped at `max_in`; None if no profit."""
    token = address(token, "token")
    mid = a.other(token)
    ra_in, ra_out = a.reserves_for(token)
    rb_in, rb_out = b.reserves_for(mid)
    x = amm.optimal_two_pool_input(ra_in, ra_out, rb_in, rb_out)
    if max_in is not None:
        x = min(x, max_in)
    if x <= 0:
        return None
    y = amm.amount_out(x, ra_in, ra_out)
    z = amm.amount_out(y, rb_in, rb_out) if y > 0 else 0
    if z <= x:
        return None
    return TwoPoolQuote(x, y, z, a.block_number)


def plan_two_pool(
    client: EvmClient,
    pool_a: str,
    pool_b: str,
    token: str,
    deadline: int,
    slippage_bps: int = 0,
    min_profit: int = 1,
    max_in: int | None = None,
    tag: int = 0,
) -> tuple[TradePlan, TwoPoolQuote] | None:
    """Plan the atomic trade token -> (A) -> other -> (B) -> token at the latest reserves."""
    a, b = read_pools(client, [pool_a, pool_b])
    q = quote_two_pool(a, b, token, max_in)
    if q is None or q.profit < min_profit:
        return None
    token = address(token, "token")
    legs = (
        Leg(a.pool, token, amm.min_out_with_slippage(q.mid_out, slippage_bps)),
        Leg(b.pool, a.other(token), amm.min_out_with_slippage(q.final_out, slippage_bps)),
    )
    return plan_path(legs, q.amount_in, min_profit, deadline, tag), q
