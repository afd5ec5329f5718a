"""JSON-RPC over a WebSocket, with the request interface of web3's HTTPProvider.

web3.py's WebSocketProvider is asynchronous only; the synchronous EvmClient uses this small
transport for ws:// and wss:// endpoints instead (websockets' synchronous client, one
persistent connection, reopened on the next request after it drops). `make_request` and
`make_batch_request` return the decoded JSON-RPC answer objects exactly like HTTPProvider's,
so EvmClient maps their errors the same way. Connection failures raise OSError or a
websockets exception, and an answer that does not come in time raises TimeoutError.
"""

from __future__ import annotations

import itertools
import json
import threading

from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect


class WsTransport:
    def __init__(self, url: str, timeout_s: float):
        self._url = url
        self._timeout = timeout_s
        self._conn: ClientConnection | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "WsTransport(<endpoint hidden>)"

    def _connection(self):
        if self._conn is None:
            opener = connect(
                self._url, open_timeout=self._timeout, max_size=None, compression=None, proxy=None
            )
            self._conn = opener.__enter__()  # a persistent connection; close() ends it
        return self._conn

    def _exchange(self, payload, want_ids: set[int]):
        with self._lock:
            conn = self._connection()
            try:
                conn.send(json.dumps(payload))
                while True:
                    answer = json.loads(conn.recv(timeout=self._timeout))
                    if isinstance(answer, list) or answer.get("id") in want_ids:
                        return answer
                    # anything else (a subscription notification) is not ours to handle here
            except (OSError, WebSocketException, TimeoutError):
                self.close()
                raise

    def make_request(self, method: str, params) -> dict:
        rid = next(self._ids)
        return self._exchange({"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}, {rid})

    def make_batch_request(self, requests_) -> list:
        batch = [
            {"jsonrpc": "2.0", "id": next(self._ids), "method": m, "params": list(p)} for m, p in requests_
        ]
        answer = self._exchange(batch, {b["id"] for b in batch})
        return answer if isinstance(answer, list) else [answer]

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except (OSError, WebSocketException):
                pass
            self._conn = None
