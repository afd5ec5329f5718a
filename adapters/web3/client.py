"""The EVM venue client: JSON-RPC through web3's HTTP provider, and the transaction lifecycle.

`EvmClient` talks to any EVM JSON-RPC endpoint (anvil, geth, a hosted node) with raw JSON-RPC
requests through web3's HTTPProvider (http/https) or a persistent WebSocket (ws/wss, see
transport.py), which keeps calls at one round trip each and lets this module map every node
answer itself:

* a revert (JSON-RPC error with revert data) -> ChainRevert decoded by the RevertDecoder;
* a refused connection or HTTP 5xx -> VenueUnavailable; HTTP 429 -> RateLimited; no answer in
  time -> RequestTimeout; another HTTP status or a body that is not JSON-RPC -> VenueError;
* any other JSON-RPC error -> VenueError(venue, str(code), message).

Sending: `send` allocates a nonce (NonceManager), prices the fees (GasPolicy, capped), signs
(Signer) and broadcasts; `wait` polls for the receipt and returns it whatever its status — a
mined revert (status 0) is for the caller to treat as a failed attempt. `replace` re-sends the
same nonce with bumped fees; `cancel` replaces it with a 0-value transfer to ourselves;
`recover_nonces` fills nonces whose transaction the node no longer has.
The chain id is checked against the config on connect, so nothing is signed for a wrong chain.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import requests
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from web3 import HTTPProvider
from websockets.exceptions import WebSocketException

from basis_core.errors import (
    ChainRevert,
    ConfigError,
    GasCapExceeded,
    NonceConflict,
    OrderRejected,
    RateLimited,
    RequestTimeout,
    VenueError,
    VenueUnavailable,
)

from .auth import Signer, hide_in_logs, safe_url, url_secrets
from .calldata import address as check_address
from .calldata import encode_call
from .constants import TRANSFER_GAS, send_refusal_code
from .gas import Fees, GasPolicy
from .nonce import NonceManager
from .revert import RevertDecoder
from .transport import WsTransport

_REVERT_CODES = (3, -32015)


@dataclass(frozen=True)
class SentTx:
    """A transaction the node accepted into its pool."""

    tx_hash: str
    nonce: int
    to: str | None
    data: bytes
    value: int
    gas: int
    fees: Fees | None  # None for a send adopted after a timeout: its fees are not known here
    kind: str
    #: the signed transaction (b"" when not known: a send adopted after a timeout); kept to
    #: broadcast it again when a reorg drops it, or to hand it to a bundle relay
    raw: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    status: int
    block_number: int
    gas_used: int
    effective_gas_price: int
    contract_address: str | None
    logs: tuple
    #: the hash of the block holding it: a reorg that replaces that block changes the hash at
    #: `block_number` (venue.py re-checks the receipt then)
    block_hash: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 1

    @property
    def gas_cost_wei(self) -> int:
        return self.gas_used * self.effective_gas_price


def _int(x) -> int:
    return int(x, 16) if isinstance(x, str) else int(x)


class EvmClient:
    """One account on one EVM endpoint. Not thread-safe except for nonce allocation."""

    def __init__(
        self,
        cfg,
        signer: Signer | None = None,
        decoder: RevertDecoder | None = None,
        check_chain: bool = True,
    ):
        self.cfg = cfg
        self.url = safe_url(cfg.rpc_url)  # the form that may appear in errors and reprs
        hide_in_logs(url_secrets(cfg.rpc_url))
        self.venue = cfg.name
        self.signer = signer
        self.decoder = decoder or RevertDecoder((), cfg.name)
        self.gas = GasPolicy(cfg, cfg.name)
        self.nonces = NonceManager()
        if cfg.rpc_url.startswith(("ws://", "wss://")):
            self._provider: WsTransport | HTTPProvider = WsTransport(cfg.rpc_url, cfg.request_timeout_s)
        else:
            self._provider = HTTPProvider(
                cfg.rpc_url,
                request_kwargs={"timeout": cfg.request_timeout_s},
                exception_retry_configuration=None,
            )
        if check_chain:
            got = _int(self.rpc("eth_chainId", []))
            if got != cfg.chain_id:
                raise ConfigError("chain_id", f"endpoint reports chain {got}, config says {cfg.chain_id}")

    @classmethod
    def from_config(cls, cfg, env=None, abis=()) -> EvmClient:
        """A client with the signer named by `cfg` (env var or keystore) and a decoder for `abis`."""
        return cls(cfg, Signer.from_config(cfg, env), RevertDecoder(abis, cfg.name))

    def __repr__(self) -> str:
        who = self.signer.address if self.signer else "read-only"
        return f"EvmClient(venue={self.venue!r}, url={self.url!r}, account={who})"

    __str__ = __repr__

    @property
    def address(self) -> str:
        if self.signer is None:
            raise ConfigError("key_env", "this client has no signer")
        return self.signer.address

    # -- JSON-RPC ----------------------------------------------------------------------------

    def rpc(self, method: str, params: list):
        """One JSON-RPC request; the `result`, or a typed error."""
        return self._result(method, self._transport(self._provider.make_request, method, params))

    def rpc_batch(self, requests_: list[tuple[str, list]]) -> list:
        """Several requests in one JSON-RPC batch (one round trip); their results in order.
        The first failing entry raises its typed error."""
        if not requests_:
            return []
        answers = self._transport(self._provider.make_batch_request, "batch", requests_)
        if not isinstance(answers, list) or len(answers) != len(requests_):
            raise VenueError(self.venue, "malformed", "batch answer does not match the batch")
        by_id = sorted(answers, key=lambda a: a.get("id", 0)) if all("id" in a for a in answers) else answers
        return [self._result(m, a) for (m, _), a in zip(requests_, by_id)]

    def _transport(self, fn, method, params):
        try:
            return fn(params) if method == "batch" else fn(method, params)
        except (requests.exceptions.Timeout, TimeoutError):
            raise RequestTimeout(
                self.venue, "timeout", f"{method} got no answer in {self.cfg.request_timeout_s}s"
            ) from None
        except requests.exceptions.HTTPError as exc:  # its text holds the full URL: never re-raised
            resp = exc.response
            status = resp.status_code if resp is not None else 0
            if status == 429 and resp is not None:
                after = resp.headers.get("Retry-After", "")
                raise RateLimited(
                    self.venue,
                    "http_429",
                    f"{method}: throttled by {self.url}",
                    float(after) if after.isdigit() else None,
                ) from None
            if status >= 500:
                raise VenueUnavailable(
                    self.venue, f"http_{status}", f"{method}: {self.url} answered {status}"
                ) from None
            raise VenueError(
                self.venue, f"http_{status}", f"{method}: {self.url} answered {status}"
            ) from None
        except ValueError as exc:  # the body is not JSON (requests' JSON errors too)
            raise VenueError(
                self.venue, "malformed", f"{method}: unusable answer from {self.url} ({type(exc).__name__})"
            ) from None
        except (OSError, WebSocketException):  # refused, reset, DNS (requests' errors are OSErrors)
            raise VenueUnavailable(
                self.venue, "unreachable", f"{method}: cannot connect to {self.url}"
            ) from None

    def _result(self, method: str, resp):
        if not isinstance(resp, dict):
            raise VenueError(self.venue, "malformed", f"{method}: answer is not a JSON-RPC object")
        err = resp.get("error")
        if err is None:
            if "result" not in resp:
                raise VenueError(self.venue, "malformed", f"{method}: answer without result or error")
            return resp["result"]
        code, msg = err.get("code"), str(err.get("message", ""))
        if code in _REVERT_CODES or "revert" in msg.lower():
            return self._raise_revert(err.get("data"), msg)
        raise VenueError(self.venue, str(code), f"{method}: {msg}")

    def _raise_revert(self, data, msg):
        if isinstance(data, dict):
            data = data.get("data")
        raise self.decoder.decode(data, "" if data else msg)

    # -- reads -------------------------------------------------------------------------------

    def block_number(self) -> int:
        return _int(self.rpc("eth_blockNumber", []))

    def latest_block(self) -> dict:
        return self.rpc("eth_getBlockByNumber", ["latest", False])

    def nonce_counts(self) -> tuple[int, int]:
        """(mined, mined + pooled) transaction counts of our account."""
        a = self.address
        latest, pending = self.rpc_batch(
            [("eth_getTransactionCount", [a, "latest"]), ("eth_getTransactionCount", [a, "pending"])]
        )
        return _int(latest), _int(pending)

    def eth_balance(self, who: str) -> int:
        return _int(self.rpc("eth_getBalance", [check_address(who), "latest"]))

    def call(self, to: str, data: bytes, block="latest", sender: str | None = None, value: int = 0) -> bytes:
        """eth_call at `block` (default: latest). Reverts raise ChainRevert."""
        tx = {"to": check_address(to), "data": "0x" + data.hex()}
        frm = sender or (self.signer.address if self.signer else None)
        if frm:
            tx["from"] = frm
        if value:
            tx["value"] = hex(value)
        tag = hex(block) if isinstance(block, int) else block
        return bytes.fromhex(self.rpc("eth_call", [tx, tag])[2:])

    def call_many(self, calls: list[tuple[str, bytes]], block="latest") -> list[bytes]:
        """Several eth_calls at the same `block` in one batch round trip; ChainRevert on the
        first that reverts."""
        tag = hex(block) if isinstance(block, int) else block
        reqs = [
            ("eth_call", [{"to": check_address(to), "data": "0x" + data.hex()}, tag]) for to, data in calls
        ]
        return [bytes.fromhex(r[2:]) for r in self.rpc_batch(reqs)]

    def erc20_balance(self, token: str, owner: str) -> int:
        out = self.call(token, encode_call("balanceOf(address)", ["address"], [check_address(owner)]))
        return int.from_bytes(out, "big")

    def estimate_gas(self, to: str | None, data: bytes, value: int = 0) -> int:
        tx = {"from": self.address, "data": "0x" + data.hex(), "value": hex(value)}
        if to is not None:
            tx["to"] = check_address(to)
        return _int(self.rpc("eth_estimateGas", [tx]))

    def next_base_fee(self) -> int:
        """Base fee of the next block: the last entry of eth_feeHistory (the latest block's
        own base fee when the node has no fee history)."""
        try:
            hist = self.rpc("eth_feeHistory", ["0x1", "latest", []])
            return _int(hist["baseFeePerGas"][-1])
        except (VenueError, KeyError, IndexError, TypeError):
            return _int(self.latest_block().get("baseFeePerGas") or 0)

    def quote_fees(self) -> Fees:
        """Fees for a new transaction under the caps (GasCapExceeded if the chain is too dear)."""
        try:  # one round trip for both when the node allows
            hist, tip = self.rpc_batch(
                [("eth_feeHistory", ["0x1", "latest", []]), ("eth_maxPriorityFeePerGas", [])]
            )
            base, tip = _int(hist["baseFeePerGas"][-1]), _int(tip)
        except (VenueUnavailable, RequestTimeout, RateLimited):
            raise
        except (VenueError, KeyError, IndexError, TypeError):  # a node without one of them
            base = self.next_base_fee()
            try:
                tip = _int(self.rpc("eth_maxPriorityFeePerGas", []))
            except VenueError:
                tip = None
        return self.gas.quote(base, tip)

    # -- sending -----------------------------------------------------------------------------

    def _ensure_sync(self) -> None:
        if not self.nonces.synced:
            self.nonces.sync(*self.nonce_counts())

    def send(
        self,
        to: str | None,
        data: bytes = b"",
        value: int = 0,
        gas: int | None = None,
        fees: Fees | None = None,
        nonce: int | None = None,
        kind: str = "trade",
    ) -> SentTx:
        """Sign and broadcast. Without `gas` it is estimated (a reverting estimate raises
        ChainRevert and nothing is sent). Without `nonce` one is allocated. A RequestTimeout
        (the transaction may or may not have arrived) carries `.tx_hash` and `.nonce`."""
        signed = self.sign(to, data, value, gas, fees, nonce, kind)
        return self.broadcast(signed, own_nonce=nonce is None)

    def sign(
        self,
        to: str | None,
        data: bytes = b"",
        value: int = 0,
        gas: int | None = None,
        fees: Fees | None = None,
        nonce: int | None = None,
        kind: str = "trade",
    ) -> SentTx:
        """Price (gas estimated when not given, fees under the caps) and sign a transaction
        without sending it; without `nonce` one is allocated, and must be sent (`broadcast`)
        or given back (`nonces.release`). The bundle path hands it to a relay instead."""
        signer = self.signer
        if signer is None:
            raise ConfigError("key_env", "this client has no signer")
        if gas is None:
            gas = self.gas.gas_limit(self.estimate_gas(to, data, value))
        elif gas > self.gas.max_gas:
            raise GasCapExceeded(self.venue, "gas", gas, self.gas.max_gas)
        fees = fees or self.quote_fees()
        self.gas.check(fees)
        self._ensure_sync()
        n = self.nonces.allocate() if nonce is None else nonce
        tx = {
            "type": 2,
            "chainId": self.cfg.chain_id,
            "nonce": n,
            "value": value,
            "data": data,
            "gas": gas,
            **fees.as_tx(),
        }
        if to is not None:
            tx["to"] = check_address(to)
        raw = signer.sign(tx)
        return SentTx("0x" + keccak(raw).hex(), n, tx.get("to"), data, value, gas, fees, kind, raw)

    def broadcast(self, tx: SentTx, own_nonce: bool = False) -> SentTx:
        """eth_sendRawTransaction of a signed `tx` (`own_nonce`: its nonce was allocated for it
        and goes back if the node refuses it). Typed errors as for `send`."""
        n, tx_hash, raw, fees, kind = tx.nonce, tx.tx_hash, tx.raw, tx.fees, tx.kind
        try:
            self.rpc("eth_sendRawTransaction", ["0x" + raw.hex()])
        except (RequestTimeout, VenueUnavailable) as exc:
            if isinstance(exc, RequestTimeout):
                self.nonces.sent(n, tx_hash, raw, fees, kind)  # it may have arrived: look it up by hash
                exc.tx_hash, exc.nonce = tx_hash, n
            elif own_nonce:
                self.nonces.release(n)
            raise
        except VenueError as exc:
            code = send_refusal_code(str(exc))
            if code != "already_known":
                self._refused(exc, code, n, own_nonce)
        self.nonces.sent(n, tx_hash, raw, fees, kind)
        return tx

    def _refused(self, exc: VenueError, code: str, n: int, own_nonce: bool):
        """Raise the typed error for a refused send; an allocated nonce goes back first."""
        if own_nonce:
            self.nonces.release(n)
        if code == "nonce_too_low":
            self.nonces.sync(*self.nonce_counts())
            raise NonceConflict(self.venue, code, f"nonce {n} already used on chain") from None
        if code == "insufficient_funds":
            raise OrderRejected(
                self.venue, code, "not enough ETH for value + gas", reason="insufficient_funds"
            ) from None
        if code == "underpriced":
            raise VenueError(self.venue, code, f"replacement for nonce {n} needs higher fees") from None
        raise VenueError(self.venue, code, str(exc).split(": ", 2)[-1]) from None

    def get_receipt(self, tx_hash: str) -> Receipt | None:
        r = self.rpc("eth_getTransactionReceipt", [tx_hash])
        if r is None:
            return None
        return Receipt(
            r["transactionHash"],
            _int(r["status"]),
            _int(r["blockNumber"]),
            _int(r["gasUsed"]),
            _int(r.get("effectiveGasPrice") or 0),
            r.get("contractAddress"),
            tuple(r.get("logs") or ()),
            str(r.get("blockHash") or ""),
        )

    def wait(self, sent: SentTx | str, timeout_s: float | None = None) -> Receipt:
        """Poll until mined (first after 0.5 ms, then doubling up to poll_interval_s); the receipt
        whatever its status. RequestTimeout if not mined in time."""
        tx_hash = sent.tx_hash if isinstance(sent, SentTx) else sent
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.cfg.receipt_timeout_s)
        delay = min(0.0005, self.cfg.poll_interval_s)  # doubling up to poll_interval_s
        while True:
            rec = self.get_receipt(tx_hash)
            if rec is not None:
                if isinstance(sent, SentTx):
                    self.nonces.mined(sent.nonce + 1)
                return rec
            if time.monotonic() >= deadline:
                exc = RequestTimeout(self.venue, "receipt_timeout", f"{tx_hash} not mined in time")
                exc.tx_hash, exc.nonce = tx_hash, sent.nonce if isinstance(sent, SentTx) else None
                raise exc
            time.sleep(delay)
            delay = min(delay * 2, self.cfg.poll_interval_s)

    def replace(
        self,
        sent: SentTx,
        to: str | None = None,
        data: bytes | None = None,
        value: int | None = None,
        gas: int | None = None,
        kind: str = "replacement",
    ) -> SentTx:
        """Re-send nonce `sent.nonce` with fees bumped above the pending transaction's."""
        fresh = self.quote_fees()
        # a send adopted after a timeout has no known fees: bump the current quote instead
        prior = sent.fees if sent.fees is not None else fresh
        fees = self.gas.bump(prior)
        fees = Fees(
            max(fees.max_fee_per_gas, fresh.max_fee_per_gas),
            max(fees.max_priority_fee_per_gas, fresh.max_priority_fee_per_gas),
        )
        if fees.max_fee_per_gas > self.gas.max_fee_cap or fees.max_priority_fee_per_gas > self.gas.tip_cap:
            fees = self.gas.bump(prior)
        return self.send(
            sent.to if to is None else to,
            sent.data if data is None else data,
            sent.value if value is None else value,
            gas or sent.gas,
            fees,
            sent.nonce,
            kind,
        )

    def cancel(self, sent: SentTx) -> SentTx:
        """Replace a pending transaction by a 0-value transfer to ourselves (same nonce)."""
        return self.replace(sent, to=self.address, data=b"", value=0, gas=TRANSFER_GAS, kind="cancel")

    def revert_reason(self, sent: SentTx, receipt: Receipt) -> ChainRevert:
        """Why a mined transaction reverted: from the node's call trace when it has one, else
        by replaying the call on the state of its block."""
        try:
            trace = self.rpc("debug_traceTransaction", [receipt.tx_hash, {"tracer": "callTracer"}])
            if isinstance(trace, dict) and (trace.get("error") or trace.get("output") not in (None, "0x")):
                return self.decoder.decode(trace.get("output"), str(trace.get("error") or ""))
        except ChainRevert as exc:
            return exc
        except VenueError:
            pass
        if sent.to is not None:  # a contract creation has no call to replay
            try:
                self.call(sent.to, sent.data, block=receipt.block_number, value=sent.value)
            except ChainRevert as exc:
                return exc
        return ChainRevert(self.venue, "unknown", (), "", "reverted on chain; replay does not revert")

    def recover_nonces(self, rebroadcast: bool = False) -> list[tuple[int, str]]:
        """Fill every nonce the node lost (dropped transaction or a send that never arrived):
        re-broadcast the original if `rebroadcast` and we have it, else a cancel. Returns
        [(nonce, "rebroadcast" | "cancel")]. Afterwards no nonce below ours is unused."""
        latest, pending = self.nonce_counts()
        self.nonces.mined(latest)
        self.nonces.sync(latest, pending)
        in_pool = {
            f.tx_hash
            for f in self.nonces.inflight()
            if self.rpc("eth_getTransactionByHash", [f.tx_hash]) is not None
        }
        actions = []
        for n in self.nonces.gaps(in_pool):
            prior = self.nonces.get(n)
            if rebroadcast and prior is not None:
                try:
                    self.rpc("eth_sendRawTransaction", ["0x" + prior.raw.hex()])
                except VenueError as exc:
                    if send_refusal_code(str(exc)) != "already_known":
                        raise
                actions.append((n, "rebroadcast"))
                continue
            fees = self.quote_fees()
            if prior is not None and prior.fees is not None:
                bumped = self.gas.bump(prior.fees)
                fees = Fees(
                    max(fees.max_fee_per_gas, bumped.max_fee_per_gas),
                    max(fees.max_priority_fee_per_gas, bumped.max_priority_fee_per_gas),
                )
            self.send(self.address, b"", 0, TRANSFER_GAS, fees, n, "cancel")
            actions.append((n, "cancel"))
        return actions

    # -- deployment --------------------------------------------------------------------------

    def deploy(self, artifact, types: Sequence[str] = (), args: Sequence = (), gas: int | None = None) -> str:
        """Deploy a compiled contract and wait for it; its address. VenueError if it reverts."""
        data = bytes.fromhex(artifact.bytecode[2:]) + (abi_encode(list(types), list(args)) if types else b"")
        sent = self.send(None, data, gas=gas, kind="deploy")
        rec = self.wait(sent)
        if not rec.ok or not rec.contract_address:
            raise VenueError(self.venue, "deploy_failed", f"{artifact.name} deployment reverted")
        return to_checksum_address(rec.contract_address)

    def transact(self, to: str, sig: str, types: list[str], args: list, gas: int | None = None) -> Receipt:
        """Send a call and wait for it; VenueError-typed ChainRevert if it reverts when mined."""
        sent = self.send(to, encode_call(sig, types, args), gas=gas)
        rec = self.wait(sent)
        if not rec.ok:
            raise self.revert_reason(sent, rec)
        return rec
