"""A local bundle relay for the tests: a loopback JSON-RPC HTTP server speaking the two methods a
searcher uses (`eth_callBundle`, `eth_sendBundle`, Flashbots' shapes) and forwarding to anvil.

* `eth_callBundle [{txs, blockNumber, stateBlockNumber}]`: each signed transaction decoded and
  run in order on the latest state with anvil's `eth_simulateV1` (one simulated block, each
  call seeing the ones before it; the chain itself is not touched). Answers
  `{bundleHash, results: [{txHash, gasUsed, value} | {txHash, gasUsed, error, revert}]}`,
  `revert` being the call's return data (hex) when it reverted.
* `eth_sendBundle [{txs, blockNumber}]`: the bundle is held for block `blockNumber` (one
  bundle per target block, as searchers send them); answers `{bundleHash}`.

Each request must carry a valid `X-Flashbots-Signature` (its signer is kept in `signers`).

A builder thread looks at the chain's head every few ms. A held bundle whose target is the next
block is simulated again on the latest state and, when every transaction in it succeeds, its
transactions are broadcast to anvil (which, automining, mines them at once); a bundle that
would revert is left out, as builders do. Bundles for blocks already past are dropped, and a
transaction already on chain is not built again (the copies for later blocks), so a bundle is
included at most once (again after a reorg took it out). `include = False` stands for a relay whose bundles are outbid at every block: it accepts
and holds them, and builds nothing.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
import rlp
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak


def _call_of(raw_hex: str) -> dict:
    """The eth_call object of a signed EIP-1559 transaction (type 2)."""
    raw = bytes.fromhex(raw_hex.removeprefix("0x"))
    if raw[0] != 2:
        raise ValueError("only type-2 transactions are relayed")
    fields = rlp.decode(raw[1:])
    _chain, nonce, tip, max_fee, gas, to, value, data = fields[:8]

    def num(b: bytes) -> str:
        return hex(int.from_bytes(b, "big"))

    call = {
        "from": Account.recover_transaction(raw),
        "nonce": num(nonce),
        "gas": num(gas),
        "maxFeePerGas": num(max_fee),
        "maxPriorityFeePerGas": num(tip),
        "value": num(value),
        "input": "0x" + data.hex(),
    }
    if to:
        call["to"] = "0x" + to.hex()
    return call


class LocalRelay:
    """The relay on 127.0.0.1 (a free port), forwarding to the anvil node at `node_url`."""

    def __init__(self, node_url: str, poll_s: float = 0.003):
        self.node_url = node_url
        self.poll_s = poll_s
        self.include = True
        self.lock = threading.Lock()
        #: (target block, tx list) of the bundles held
        self.held: list[tuple[int, list[str]]] = []
        self.calls: list[str] = []  # the methods asked for, in order
        self.signers: set[str] = set()  # the addresses that signed requests
        self.included: list[tuple[int, str]] = []  # (block it was built into, bundle hash)
        self._stop = threading.Event()
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                text = self.rfile.read(int(self.headers["Content-Length"]))
                body = json.loads(text)
                try:
                    relay.check_signature(text, self.headers.get("X-Flashbots-Signature", ""))
                    out = {"jsonrpc": "2.0", "id": body.get("id"), "result": relay.answer(body)}
                except Exception as exc:  # a JSON-RPC error, as a relay answers
                    out = {
                        "jsonrpc": "2.0",
                        "id": body.get("id"),
                        "error": {"code": -32000, "message": str(exc)},
                    }
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._threads = [
            threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True),
            threading.Thread(target=self._build, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def node(self, method: str, params: list):
        body = requests.post(
            self.node_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=10
        ).json()
        if "error" in body:
            raise RuntimeError(f"{method}: {body['error'].get('message')}")
        return body["result"]

    def check_signature(self, body: bytes, header: str) -> None:
        """The searcher's `X-Flashbots-Signature: ADDRESS:SIGNATURE` over the hex keccak of the
        body: its signer must be the address it names (kept in `signers`)."""
        who, _, sig = header.partition(":")
        digest = "0x" + keccak(body).hex()
        if (
            not sig
            or Account.recover_message(encode_defunct(text=digest), signature=sig).lower() != who.lower()
        ):
            raise ValueError("missing or invalid X-Flashbots-Signature")
        self.signers.add(who)

    def mined(self, raw: str) -> bool:
        return self.node("eth_getTransactionReceipt", ["0x" + keccak(hexstr=raw).hex()]) is not None

    @staticmethod
    def bundle_hash(txs: list[str]) -> str:
        return "0x" + keccak(b"".join(keccak(hexstr=t) for t in txs)).hex()

    def answer(self, body: dict):
        method, params = body.get("method"), body.get("params") or [{}]
        self.calls.append(str(method))
        req = params[0]
        txs = list(req["txs"])
        if method == "eth_callBundle":
            return {"bundleHash": self.bundle_hash(txs), "results": self.simulate(txs)}
        if method == "eth_sendBundle":
            with self.lock:
                self.held.append((int(req["blockNumber"], 16), txs))
            return {"bundleHash": self.bundle_hash(txs)}
        raise ValueError(f"method {method} not served by this relay")

    def simulate(self, txs: list[str]) -> list[dict]:
        calls = [_call_of(t) for t in txs]
        block = self.node("eth_simulateV1", [{"blockStateCalls": [{"calls": calls}]}, "latest"])[0]
        out = []
        for raw, res in zip(txs, block["calls"]):
            item = {"txHash": "0x" + keccak(hexstr=raw).hex(), "gasUsed": int(res["gasUsed"], 16)}
            if int(res["status"], 16) == 1:
                item["value"] = res.get("returnData", "0x")
            else:
                item["error"] = "execution reverted"
                item["revert"] = res.get("returnData", "0x")
            out.append(item)
        return out

    def _build(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except (requests.RequestException, RuntimeError, ValueError):
                pass  # the node restarted or answered oddly: the next look decides
            self._stop.wait(self.poll_s)

    def _step(self) -> None:
        nxt = int(self.node("eth_blockNumber", []), 16) + 1
        with self.lock:
            self.held = [b for b in self.held if b[0] >= nxt]  # past their block: dropped
            if not self.include:  # outbid: held on until their blocks pass, never built
                return
            due = [b for b in self.held if b[0] == nxt]
            self.held = [b for b in self.held if b[0] > nxt]
        for _target, txs in due:
            if any(self.mined(t) for t in txs) or any("error" in r for r in self.simulate(txs)):
                continue  # already on chain (a copy for another block), or it would revert: left out
            for raw in txs:
                self.node("eth_sendRawTransaction", [raw])
            self.included.append((nxt, self.bundle_hash(txs)))

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> LocalRelay:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
