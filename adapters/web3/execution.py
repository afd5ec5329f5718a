"""Atomic multi-leg trades through the AtomicExecutor contract: simulate, then send.

`AtomicTrader.execute(plan)`:

1. builds the calldata (deterministic, see calldata.py);
2. simulates it with eth_call at the latest block, from the owner account. A revert here
   means the trade is NOT sent: the result is `NOT_SENT` with the decoded reason;
3. sends it (nonce manager, capped EIP-1559 fees, gas from the estimate) and waits for the
   receipt;
4. a receipt with status 1 is `FILLED`, with the amounts read from the Executed event; a
   receipt with status 0 is `REVERTED`: a failed attempt with no token exposure (the contract
   undid every leg), its reason decoded from the node, its gas cost recorded.

Each outcome can be written as a 64-byte ORDER_EVENT record (`to_record`) for the journal:
FILLED -> FILL; NOT_SENT / REVERTED -> REJECT with a RejectReason (revert.refusal_reason:
SLIPPAGE for a leg or profit bound, EXPIRED for the deadline, INSUFFICIENT_FUNDS for a token
balance too small; EDGE_GONE for other simulation failures, VENUE_REJECT for other reverts).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from eth_abi import decode as abi_decode
from eth_utils import keccak

from basis_core import schema
from basis_core.errors import ChainRevert, MalformedResponse, SimulationFailed

from .calldata import Leg, address, encode_execute, uint
from .client import EvmClient, Receipt, SentTx
from .revert import refusal_reason

EXECUTED_TOPIC = "0x" + keccak(text="Executed(bytes32,address,uint256,uint256,uint256)").hex()


class Outcome(enum.IntEnum):
    FILLED = 0
    NOT_SENT = 1  # the pre-trade simulation failed: nothing was broadcast
    REVERTED = 2  # mined with status 0: gas spent, no token exposure


@dataclass(frozen=True)
class TradePlan:
    """One atomic trade: run `legs` starting with `amount_in` of legs[0].token_in; revert
    unless each leg meets its min_out and the result is >= amount_in + min_profit by
    `deadline` (unix seconds). `tag` (e.g. a client order id) is echoed in the Executed event."""

    legs: tuple[Leg, ...]
    amount_in: int
    min_profit: int
    deadline: int
    tag: int = 0

    def calldata(self) -> bytes:
        return encode_execute(self.legs, self.amount_in, self.min_profit, self.deadline, self.tag)


@dataclass(frozen=True)
class AtomicResult:
    outcome: Outcome
    plan: TradePlan
    reason: ChainRevert | None = None
    simulated_out: int | None = None
    tx_hash: str | None = None
    nonce: int | None = None
    block_number: int | None = None
    gas_used: int = 0
    gas_cost_wei: int = 0
    amount_out: int = 0
    sim_latency_ns: int = 0
    send_latency_ns: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome == Outcome.FILLED

    @property
    def exposure_free(self) -> bool:
        """True when no token balance changed (every outcome but FILLED)."""
        return self.outcome != Outcome.FILLED

    @property
    def profit(self) -> int:
        return self.amount_out - self.plan.amount_in if self.ok else 0

    def as_dict(self) -> dict:
        """JSON-ready summary for the exception log and reports: outcome, decoded reason,
        transaction, gas and amounts (base units as decimal strings, exact)."""
        r = self.reason
        return {
            "outcome": self.outcome.name,
            "tx_hash": self.tx_hash,
            "nonce": self.nonce,
            "block": self.block_number,
            "error": r.error_name if r is not None else None,
            "error_args": [str(a) for a in r.revert_args] if r is not None else [],
            "amount_in": str(self.plan.amount_in),
            "amount_out": str(self.amount_out),
            "profit": str(self.profit),
            "simulated_out": None if self.simulated_out is None else str(self.simulated_out),
            "gas_used": self.gas_used,
            "gas_cost_wei": str(self.gas_cost_wei),
            "reject_reason": self.reject_reason().name,
        }

    def reject_reason(self) -> schema.RejectReason:
        if self.ok:
            return schema.RejectReason.NONE
        named = refusal_reason(self.reason) if self.reason is not None else "venue_reject"
        if named == "venue_reject" and self.outcome == Outcome.NOT_SENT:
            return schema.RejectReason.EDGE_GONE
        return schema.RejectReason[named.upper()]

    def to_record(
        self, seq: int, venue_id: int, instrument_id: int = 0, coid: int = 0, scale: float = 1e-18
    ) -> schema.np.ndarray:
        """A sealed ORDER_EVENT record of this outcome; amounts in natural units (x `scale`);
        `fee` = gas cost in ETH."""
        rec = schema.empty(schema.Kind.ORDER_EVENT)
        r = rec[0]
        r["seq"], r["ts_ns"], r["venue"], r["instrument"] = seq, time.time_ns(), venue_id, instrument_id
        r["coid"] = coid or (self.plan.tag if self.plan.tag < (1 << 64) else 0)
        r["sub"] = int(schema.OrderEventType.FILL if self.ok else schema.OrderEventType.REJECT)
        r["reason"] = int(self.reject_reason())
        r["last_qty"] = self.plan.amount_in * scale if self.ok else 0.0
        r["last_px"] = (self.amount_out / self.plan.amount_in) if self.ok and self.plan.amount_in else 0.0
        r["fee"] = self.gas_cost_wei * 1e-18
        return schema.seal(rec)


class AtomicTrader:
    """Sends TradePlans to one deployed AtomicExecutor owned by the client's account."""

    def __init__(self, client: EvmClient, executor: str):
        self.client = client
        self.executor = address(executor, "executor")

    def simulate(self, plan: TradePlan) -> int:
        """Final amount the plan yields at the latest block; SimulationFailed if it reverts."""
        try:
            out = self.client.call(self.executor, plan.calldata(), block="latest")
        except ChainRevert as exc:
            raise SimulationFailed(self.client.venue, exc) from None
        return int.from_bytes(out[:32], "big")

    def execute(self, plan: TradePlan, simulate: bool = True, gas: int | None = None) -> AtomicResult:
        """Simulate (unless told not to), send, wait; an AtomicResult for every trade outcome.
        Infrastructure failures (fee cap, node down, receipt timeout) raise their typed errors."""
        sim_out, t_sim = None, 0
        if simulate:
            t0 = time.perf_counter_ns()
            try:
                sim_out = self.simulate(plan)
            except SimulationFailed as exc:
                return AtomicResult(
                    Outcome.NOT_SENT, plan, reason=exc.cause, sim_latency_ns=time.perf_counter_ns() - t0
                )
            t_sim = time.perf_counter_ns() - t0
        t1 = time.perf_counter_ns()
        try:
            sent = self.dispatch(plan, gas)
        except ChainRevert as exc:  # the gas estimate reverted: the state moved since the simulation
            return AtomicResult(
                Outcome.NOT_SENT, plan, reason=exc, simulated_out=sim_out, sim_latency_ns=t_sim
            )
        return self.settle(plan, sent, sim_out, t_sim, t1)

    def dispatch(self, plan: TradePlan, gas: int | None = None) -> SentTx:
        """Broadcast the plan without simulating (execute() is the gated path). Without `gas`
        it is estimated, and a reverting estimate raises ChainRevert before anything is sent."""
        data = plan.calldata()
        if gas is None:
            gas = self.client.gas.gas_limit(self.client.estimate_gas(self.executor, data))
        return self.client.send(self.executor, data, gas=gas)

    def settle(
        self,
        plan: TradePlan,
        sent: SentTx,
        simulated_out: int | None = None,
        sim_latency_ns: int = 0,
        started_ns: int | None = None,
    ) -> AtomicResult:
        """Wait for `sent` to be mined and classify it: FILLED or REVERTED (decoded reason)."""
        rec = self.client.wait(sent)
        t_send = time.perf_counter_ns() - started_ns if started_ns is not None else 0
        if rec.ok:
            outcome, reason, amount_out = Outcome.FILLED, None, self._executed_amount(rec, plan)
        else:
            outcome, reason, amount_out = Outcome.REVERTED, self.client.revert_reason(sent, rec), 0
        return AtomicResult(
            outcome,
            plan,
            reason=reason,
            amount_out=amount_out,
            simulated_out=simulated_out,
            tx_hash=sent.tx_hash,
            nonce=sent.nonce,
            block_number=rec.block_number,
            gas_used=rec.gas_used,
            gas_cost_wei=rec.gas_cost_wei,
            sim_latency_ns=sim_latency_ns,
            send_latency_ns=t_send,
        )

    def _executed_amount(self, rec: Receipt, plan: TradePlan) -> int:
        for log in rec.logs:
            topics = log.get("topics") or ()
            if (
                topics
                and topics[0].lower() == EXECUTED_TOPIC
                and log["address"].lower() == self.executor.lower()
            ):
                _amount_in, amount_out, _profit = abi_decode(["uint256"] * 3, bytes.fromhex(log["data"][2:]))
                return amount_out
        raise MalformedResponse(
            self.client.venue,
            "no_executed_event",
            f"{rec.tx_hash} succeeded without an Executed event from {self.executor}",
        )


def plan_path(legs, amount_in: int, min_profit: int, deadline: int, tag: int = 0) -> TradePlan:
    """A TradePlan with its inputs checked (OrderRejected reason "bad_input" on a bad value)."""
    return TradePlan(
        tuple(legs),
        uint(amount_in, "amount_in"),
        uint(min_profit, "min_profit"),
        uint(deadline, "deadline", 64),
        tag,
    )
