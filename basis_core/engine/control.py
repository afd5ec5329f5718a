"""The operator's control socket: `basis ctl RUN_DIR COMMAND` talks to a running engine here.

A Unix domain socket in the run directory (`RUN_DIR/ctl.sock`, mode 0600), served by the io
side of every layout (the Runner's process: the only one on the virtual clock, the io process
on the real clock). A peer whose uid (SO_PEERCRED) is not the engine's is answered with a
refusal and dropped. One JSON object per line each way (orjson):

    {"cmd": "set-limit", "args": ["max_order_usdt", "1000"]}
    {"ok": true, "cmd": "set-limit", "answer": "accepted: max_order_usdt = 1000", "status": {...}}

`status` is read from what the runner holds (its engine core: the engine itself on the virtual
clock, the io process's shadow of it on the real clock, and its ledger). Every other command
becomes a CONTROL record that enters the engine like any input, journaled first
(engine/operator.py decides it), so `basis replay` re-decides a steered run. The answer waits
until the engine has decided the record and carries the engine's verdict; what cannot make a
record (an unknown command or venue, a bad number, a limit outside the config's bounds) is
refused here without reaching the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from .. import schema as S
from ..config import LIMIT_FIELDS, policy_limit
from ..errors import BasisError
from ..state.tables import HedgeState
from .operator import check_limit

if TYPE_CHECKING:
    from .runner import Runner

SOCKET_NAME = "ctl.sock"
#: the longest request line read (a command and its arguments are a few dozen bytes)
MAX_LINE = 4096
#: how long an answer waits for the engine to decide the command (loop time, s)
ANSWER_WAIT_S = 10.0
_PEERCRED = struct.Struct("3i")  # pid, uid, gid

#: what `basis ctl` may ask: command -> (CONTROL command, number of arguments); None = status
COMMANDS: dict[str, tuple[S.ControlCommand | None, int]] = {
    "status": (None, 0),
    "halt": (S.ControlCommand.HALT, 0),
    "resume": (S.ControlCommand.RESUME, 0),
    "flatten": (S.ControlCommand.FLATTEN, 0),
    "cancel-all": (S.ControlCommand.CANCEL_ALL, 0),
    "pause-venue": (S.ControlCommand.PAUSE_VENUE, 1),
    "resume-venue": (S.ControlCommand.RESUME_VENUE, 1),
    "set-limit": (S.ControlCommand.SET_LIMIT, 2),
}


class Refused(Exception):
    """A command that cannot become a CONTROL record: the reason goes back to the operator."""


def socket_path(run_dir: Path | str) -> Path:
    return Path(run_dir) / SOCKET_NAME


@contextlib.contextmanager
def socket_address(path: Path):
    """An address for `path` that fits a Unix socket's 108 bytes: the path itself, or for a long
    one the same file reached through an open descriptor of its directory (/proc/self/fd/N)."""
    if len(os.fsencode(str(path))) < 100:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a connected Unix socket (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    return _PEERCRED.unpack(raw)[1]


class ControlServer:
    """Serves the control socket for one running `runner` (see module docstring)."""

    def __init__(self, runner: Runner, path: Path, uid: int | None = None):
        self.runner = runner
        self.path = Path(path)
        #: the only uid answered (the engine's own by default)
        self.uid = os.getuid() if uid is None else uid
        self._server: asyncio.AbstractServer | None = None
        self._one_at_a_time = asyncio.Lock()

    async def open(self) -> ControlServer:
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # created 0600: no moment in which another user may connect
        try:
            with socket_address(self.path) as address:
                sock.bind(address)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(8)
        sock.setblocking(False)
        self._server = await asyncio.start_unix_server(self._client, sock=sock, limit=MAX_LINE)
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            uid = peer_uid(writer.get_extra_info("socket"))
            if uid != self.uid:
                await _send(writer, {"ok": False, "error": f"uid {uid} may not steer this engine"})
                return
            while line := await reader.readline():
                try:
                    request = orjson.loads(line)
                    if not isinstance(request, dict):
                        raise Refused("a request is one JSON object per line")
                    answer = await self.answer(request, uid)
                except (Refused, orjson.JSONDecodeError) as exc:
                    answer = {"ok": False, "error": str(exc)}
                except Exception as exc:  # the socket outlives a bad answer; the run goes on
                    answer = {"ok": False, "error": f"cannot answer: {type(exc).__name__}: {exc}"}
                await _send(writer, answer)
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass  # the peer went away, or sent a line too long to be a command
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def answer(self, request: dict, uid: int = 0) -> dict:
        """The answer to one request (a Refused exception for one that cannot be sent)."""
        name = str(request.get("cmd", ""))
        args = [str(a) for a in request.get("args", [])]
        if name not in COMMANDS:
            raise Refused(f"unknown command {name!r} (one of {', '.join(COMMANDS)})")
        cmd, nargs = COMMANDS[name]
        if len(args) != nargs:
            raise Refused(f"{name} takes {nargs} argument(s), got {len(args)}")
        if cmd is None:
            return {"ok": True, "cmd": name, "status": status(self.runner)}
        record = self._record(cmd, args, uid)
        async with self._one_at_a_time:
            verdict = await self._decided(record)
        ok = verdict.startswith("accepted")
        return {
            "ok": ok,
            "cmd": name,
            "answer" if ok else "error": verdict if ok else verdict.removeprefix("refused: "),
            "status": status(self.runner),
        }

    def _record(self, cmd: S.ControlCommand, args: list[str], uid: int) -> np.ndarray:
        runner = self.runner
        venue, aux, value = 0, 0, 0.0
        if cmd in (S.ControlCommand.PAUSE_VENUE, S.ControlCommand.RESUME_VENUE):
            if args[0] not in runner.core.board.venues:
                raise Refused(f"unknown venue {args[0]!r} (one of {', '.join(runner.core.board.venues)})")
            venue = runner.reg.venue(args[0])
        elif cmd == S.ControlCommand.SET_LIMIT:
            key = args[0]
            try:
                value = float(args[1])
            except ValueError:
                raise Refused(f"{args[1]!r} is not a number") from None
            why = check_limit(key, value, runner.policy)
            if why:
                raise Refused(why)
            aux = list(LIMIT_FIELDS).index(key)
        return S.control_record(runner.now_ns(), cmd, aux, uid, venue=venue, value=value)

    async def _decided(self, record: np.ndarray) -> str:
        """Hand `record` to the engine; the engine's verdict once it has decided it."""
        log = self.runner.core.operator_log
        seen = len(log)
        self.runner.send_control(record)
        waited = 0.0
        while waited < ANSWER_WAIT_S:
            log = self.runner.core.operator_log  # (a restarted engine's shadow is a new core)
            if len(log) > seen:
                return log[seen][2]
            await asyncio.sleep(0.01)
            waited += 0.01
        return "sent: the engine has not decided it yet (restarting?); see `status`"


async def _send(writer: asyncio.StreamWriter, obj: dict) -> None:
    writer.write(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    await writer.drain()


def status(runner: Runner) -> dict[str, Any]:
    """What `basis ctl status` prints: the engine, venue and position states, working orders,
    residual exposure, realized PnL, the limits in force and the operator's last commands."""
    core = runner.core
    book = core.orders.orders
    positions, residual = [], 0.0
    for pos in core.open_positions.values():
        net = pos.net_qty(book)
        mark = _mark(core, pos.buy.instrument)
        res = abs(net) * mark
        if pos.state != HedgeState.RECONCILED:
            residual += res
        positions.append(
            {
                "opportunity": pos.opp_id,
                "strategy": pos.strategy,
                "state": pos.state.name,
                "buy": pos.buy.instrument,
                "sell": pos.sell.instrument,
                "qty": pos.qty,
                "net_qty": net,
                "residual_usdt": res,
            }
        )
    orders = [
        {
            "coid": o.wire,
            "venue": o.venue,
            "instrument": o.instrument,
            "side": S.Side(o.side).name.lower(),
            "purpose": o.purpose,
            "state": o.state.name,
            "qty": o.qty,
            "filled": o.filled,
            "price": o.price,
        }
        for o in core.orders.working()
    ]
    history = core.engine.history
    ledger = getattr(runner, "ledger", None)
    return {
        "t_s": (core.now - core.market.start_ns) / 1e9,
        "engine": {
            "state": core.engine.state.name,
            "since_s": (core.now - core.engine.since_ns) / 1e9,
            "cause": history[-1].cause if history else "",
        },
        "deciding": runner.deciding(),
        "venues": {
            name: {"state": v.state.name, "paused": v.paused} for name, v in core.board.venues.items()
        },
        "positions": positions,
        "working_orders": orders,
        "residual_usdt": residual,
        "realized_pnl_usdt": ledger.realized_pnl_usdt if ledger is not None else 0.0,
        "fees_usdt": ledger.fees_usdt if ledger is not None else 0.0,
        "limits": {key: _limit(core.policy, key) for key in LIMIT_FIELDS},
        "operator": [{"t_ns": t, "cmd": c, "answer": a} for t, c, a in core.operator_log[-10:]],
    }


def _limit(policy: object, key: str) -> float:
    field, per_unit = policy_limit(key, 1.0)
    return getattr(policy, field) / per_unit


def _mark(core, instrument: str) -> float:
    try:
        return core.market.mark(core.rules[instrument].base)
    except BasisError:
        return 0.0  # no mark yet
