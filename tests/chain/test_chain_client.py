"""The JSON-RPC client maps every node answer to a typed outcome."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest
from chainkit import E18, make_client, rpc, swap

from adapters.web3.calldata import encode_call
from adapters.web3.client import EvmClient
from adapters.web3.config import Web3VenueConfig
from basis_core.errors import ChainRevert, RateLimited, RequestTimeout, VenueError, VenueUnavailable

pytestmark = pytest.mark.chain


def test_unreachable_endpoint_is_venue_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: refused
        with pytest.raises(VenueUnavailable) as info:
            EvmClient(Web3VenueConfig(rpc_url=f"http://127.0.0.1:{port}", request_timeout_s=2))
    assert info.value.code == "unreachable"


def test_unknown_method_is_a_venue_error_with_the_node_code(owner):
    with pytest.raises(VenueError) as info:
        owner.rpc("eth_noSuchMethod", [])
    assert info.value.code == "-32601" and not isinstance(info.value, ChainRevert)


def test_batched_calls_share_a_block_and_a_revert_in_the_batch_is_decoded(world, owner):
    bal = encode_call("balanceOf(address)", ["address"], [world.executor])
    r0 = encode_call("reserve0()", [], [])
    a, b = owner.call_many([(world.y, bal), (world.pool_a, r0)])
    assert int.from_bytes(a, "big") == world.executor_funds and int.from_bytes(b, "big") == 100 * E18
    bad = encode_call("quote(address,uint256)", ["address", "uint256"], [world.executor, 1])
    with pytest.raises(ChainRevert) as info:
        owner.call_many([(world.y, bal), (world.pool_a, bad)])
    assert info.value.error_name == "UnknownToken"
    assert owner.call_many([]) == []


def test_receipt_that_never_comes_is_a_request_timeout(world, owner):
    rpc(world.url, "evm_setAutomine", [False])
    sent = owner.send(owner.address, b"", gas=21_000)
    with pytest.raises(RequestTimeout) as info:
        owner.wait(sent, timeout_s=0.05)
    assert info.value.code == "receipt_timeout"
    assert (info.value.tx_hash, info.value.nonce) == (sent.tx_hash, sent.nonce)  # to look it up later
    rpc(world.url, "evm_mine")
    assert owner.wait(sent).ok


def test_mined_revert_is_reported_with_its_decoded_custom_error(world, owner):
    data = encode_call(
        "swap(address,uint256,uint256,address)",
        ["address", "uint256", "uint256", "address"],
        [world.y, 1_000 * E18, 10**30, owner.address],
    )  # min out impossible
    sent = owner.send(world.pool_a, data, gas=200_000)  # explicit gas: no estimate
    rec = owner.wait(sent)
    assert rec.status == 0 and not rec.ok and rec.gas_used > 0
    why = owner.revert_reason(sent, rec)
    assert why.error_name == "InsufficientOutput" and why.revert_args[1] == 10**30
    with pytest.raises(ChainRevert) as info:  # transact() raises it
        owner.transact(
            world.pool_a,
            "swap(address,uint256,uint256,address)",
            ["address", "uint256", "uint256", "address"],
            [world.y, E18, 10**30, owner.address],
            gas=200_000,
        )
    assert info.value.error_name == "InsufficientOutput"


def test_revert_reason_falls_back_to_a_replay_when_the_node_has_no_tracer(world, owner, monkeypatch):
    sent = swap(owner, world.pool_a, world.y, E18, gas=200_000)
    owner.wait(sent)
    data = encode_call(
        "swap(address,uint256,uint256,address)",
        ["address", "uint256", "uint256", "address"],
        [world.x, E18, 10**30, owner.address],
    )
    bad = owner.send(world.pool_a, data, gas=200_000)
    rec = owner.wait(bad)
    real_rpc = owner.rpc

    def no_debug(method, params):
        if method.startswith("debug_"):
            raise VenueError(owner.venue, "-32601", "Method not found")
        return real_rpc(method, params)

    monkeypatch.setattr(owner, "rpc", no_debug)
    why = owner.revert_reason(bad, rec)
    assert why.error_name == "InsufficientOutput"


class _Answer(http.server.BaseHTTPRequestHandler):
    """Loopback endpoint that answers every POST with the status/body of its path."""

    ANSWERS = {
        "/busy": (429, {"Retry-After": "3"}, b"slow down"),
        "/down": (503, {}, b"maintenance"),
        "/garbage": (200, {"Content-Type": "application/json"}, b"{not json"),
        "/noresult": (200, {"Content-Type": "application/json"}, b'{"jsonrpc":"2.0","id":0}'),
    }

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, headers, body = self.ANSWERS[self.path]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def odd_endpoint():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize(
    "path,error,code",
    [
        ("/busy", RateLimited, "http_429"),
        ("/down", VenueUnavailable, "http_503"),
        ("/garbage", VenueError, "malformed"),
        ("/noresult", VenueError, "malformed"),
    ],
)
def test_http_level_failures_map_to_typed_errors(odd_endpoint, path, error, code):
    c = EvmClient(Web3VenueConfig(rpc_url=odd_endpoint + path, request_timeout_s=2), None, check_chain=False)
    with pytest.raises(error) as info:
        c.block_number()
    assert info.value.code == code
    if path == "/busy":
        assert info.value.retry_after_s == 3.0


def test_websocket_endpoint_runs_the_same_client(world, decoder):
    ws = make_client(world.url.replace("http://", "ws://"), decoder, 0)
    http = make_client(world.url, decoder, 0)
    assert ws.block_number() == http.block_number()
    assert ws.erc20_balance(world.y, world.executor) == world.executor_funds
    sent = ws.send(ws.address, b"", value=7, gas=21_000)
    assert ws.wait(sent).ok and http.get_receipt(sent.tx_hash).ok
    assert ws.nonce_counts() == http.nonce_counts()  # a batch over the socket
    with pytest.raises(ChainRevert) as info:
        ws.call(
            world.pool_a, encode_call("quote(address,uint256)", ["address", "uint256"], [world.executor, 1])
        )
    assert info.value.error_name == "UnknownToken"
    ws._provider.close()  # a dropped socket is reopened
    assert ws.block_number() == http.block_number()


def test_websocket_to_a_closed_port_is_venue_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(VenueUnavailable):
            EvmClient(Web3VenueConfig(rpc_url=f"ws://127.0.0.1:{port}", request_timeout_s=2))
