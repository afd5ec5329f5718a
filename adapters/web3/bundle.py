"""A bundle relay client: private submission instead of the public mempool.

Where a web3 venue's table names a `relay_url`, its swaps go to that relay as bundles (one
signed transaction each) in Flashbots' JSON-RPC shapes:

* `eth_callBundle [{txs, blockNumber, stateBlockNumber: "latest"}]` simulates the bundle on the
  latest state for the next block; a transaction that reverts there comes back with `error`
  (and its return data in `revert`): the swap is refused (`simulate` raises the decoded
  ChainRevert) and nothing is sent;
* `eth_sendBundle [{txs, blockNumber}]` once per target block, the next `bundle_blocks` blocks:
  a relay includes it at most once (one nonce), or not at all.

Every request carries `X-Flashbots-Signature: ADDRESS:SIGNATURE`, the venue's account signing
the hex keccak of the body (EIP-191), as Flashbots-style relays ask. The relay URL is kept out of
errors and logs (hosted relays may carry a key in it), as the node's is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import requests
from eth_utils import keccak

from basis_core.errors import RequestTimeout, VenueError, VenueUnavailable

from .auth import Signer, hide_in_logs, safe_url, url_secrets
from .revert import RevertDecoder


@dataclass(frozen=True)
class Simulated:
    """One transaction of a simulated bundle."""

    tx_hash: str
    gas_used: int


class BundleRelay:
    """JSON-RPC to one relay for venue `venue`, signed by `signer`."""

    def __init__(self, url: str, venue: str, signer: Signer, decoder: RevertDecoder, timeout_s: float = 10.0):
        self._url = url
        self.url = safe_url(url)
        hide_in_logs(url_secrets(url))
        self.venue, self.signer, self.decoder, self.timeout_s = venue, signer, decoder, timeout_s
        self._session = requests.Session()
        self._id = 0

    def __repr__(self) -> str:
        return f"BundleRelay(venue={self.venue!r}, url={self.url!r})"

    __str__ = __repr__

    def rpc(self, method: str, params: list):
        """One signed JSON-RPC request to the relay; its result, or a typed error."""
        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        sig = self.signer.sign_text("0x" + keccak(text=body).hex())
        headers = {
            "Content-Type": "application/json",
            "X-Flashbots-Signature": f"{self.signer.address}:{sig}",
        }
        try:
            resp = self._session.post(self._url, data=body, headers=headers, timeout=self.timeout_s)
        except requests.exceptions.Timeout:
            raise RequestTimeout(
                self.venue, "relay_timeout", f"{method}: {self.url} gave no answer"
            ) from None
        except (requests.exceptions.ConnectionError, OSError):
            raise VenueUnavailable(
                self.venue, "relay_unreachable", f"{method}: cannot connect to {self.url}"
            ) from None
        if resp.status_code >= 500:
            raise VenueUnavailable(self.venue, f"http_{resp.status_code}", f"{method}: {self.url} failed")
        try:
            answer = resp.json()
        except ValueError:
            raise VenueError(self.venue, "malformed", f"{method}: unusable answer from {self.url}") from None
        if not isinstance(answer, dict) or ("result" not in answer and "error" not in answer):
            raise VenueError(self.venue, "malformed", f"{method}: answer is not a JSON-RPC object")
        err = answer.get("error")
        if err is not None:
            msg = str(err.get("message", "")) if isinstance(err, dict) else str(err)
            raise VenueError(self.venue, "relay_refused", f"{method}: {msg}")
        return answer["result"]

    def simulate(self, raws: list[bytes], block: int) -> list[Simulated]:
        """eth_callBundle of `raws` for block `block` on the latest state: each transaction's
        gas; the first that reverts raises its decoded ChainRevert."""
        res = self.rpc(
            "eth_callBundle",
            [
                {
                    "txs": ["0x" + r.hex() for r in raws],
                    "blockNumber": hex(block),
                    "stateBlockNumber": "latest",
                }
            ],
        )
        items = res.get("results") if isinstance(res, dict) else None
        if not isinstance(items, list) or len(items) != len(raws):
            raise VenueError(self.venue, "malformed", "eth_callBundle: results do not match the bundle")
        out = []
        for item in items:
            if item.get("error") or item.get("revert"):
                revert = item.get("revert")
                data = revert if isinstance(revert, str) and revert.startswith("0x") else None
                raise self.decoder.decode(data, "" if data and data != "0x" else str(item.get("error")))
            out.append(Simulated(str(item.get("txHash", "")), int(item.get("gasUsed", 0))))
        return out

    def send(self, raws: list[bytes], blocks: range) -> list[str]:
        """eth_sendBundle of `raws` for each block of `blocks`; the bundle hashes."""
        txs = ["0x" + r.hex() for r in raws]
        return [
            str(self.rpc("eth_sendBundle", [{"txs": txs, "blockNumber": hex(b)}]).get("bundleHash"))
            for b in blocks
        ]
