"""Steer a running engine through its control socket (RUN_DIR/ctl.sock).

  status                   engine, venue and position states, working orders, residual
                           exposure, realized PnL, the limits in force
  halt                     no new exposure; working entries cancelled
  resume                   back to NORMAL through a clean reconciliation (HALTED only, every
                           position flat or hedged, the last reconciliation pass clean)
  flatten                  halt, and unwind every position that is not hedged
  cancel-all               cancel every working order
  pause-venue VENUE        no new order goes to VENUE (cancels and queries still do)
  resume-venue VENUE       VENUE takes new orders again
  set-limit KEY VALUE      a [limits] value, tightened within the config (never looser)

Every command but status enters the engine as a journaled CONTROL record, so `basis replay`
re-decides the steered run. Prints the engine's answer; exits 0 when the command was
accepted, 1 with the reason when it was refused or when no engine listens in RUN_DIR.
"""

from __future__ import annotations

import argparse
import socket
import sys

NAME = "ctl"
HELP = "steer a running engine: status, halt, resume, flatten, cancel-all, pause-venue ..."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="the running engine's run directory (it holds ctl.sock)")
    parser.add_argument("command", help="status, halt, resume, flatten, cancel-all, pause-venue, ...")
    parser.add_argument("args", nargs="*", help="VENUE, or KEY VALUE for set-limit")
    parser.add_argument("--json", action="store_true", help="print the whole answer as JSON")


def ask(run_dir: str, command: str, args: list[str], timeout_s: float = 30.0) -> dict:
    """Send one command to the engine running in `run_dir`; its answer (a dict with "ok")."""
    import orjson

    from ..engine.control import socket_address, socket_path

    path = socket_path(run_dir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            with socket_address(path) as address:
                sock.connect(address)
        except OSError as exc:
            return {"ok": False, "error": f"no engine listens at {path}: {exc.strerror or exc}"}
        try:
            sock.sendall(orjson.dumps({"cmd": command, "args": args}) + b"\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the engine answered (a refusal) and closed before reading: its answer is below
        line = b""
        while not line.endswith(b"\n"):
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break  # closed with our command unread: what it answered before is all there is
            except TimeoutError:
                return {"ok": False, "error": f"the engine did not answer within {timeout_s:g} s"}
            if not chunk:
                break
            line += chunk
    if not line:
        return {"ok": False, "error": "the engine closed the connection without an answer"}
    return orjson.loads(line)


def main(args: argparse.Namespace) -> int:
    import orjson

    answer = ask(args.run_dir, args.command, args.args)
    if args.json or (answer.get("ok") and args.command == "status"):
        body = answer if args.json else answer["status"]
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    elif answer.get("ok"):
        engine = answer.get("status", {}).get("engine", {}).get("state", "")
        print(f"{answer['answer']}" + (f" (engine {engine})" if engine else ""))
    if not answer.get("ok"):
        print(f"refused: {answer.get('error', 'no answer')}", file=sys.stderr)
        return 1
    return 0
