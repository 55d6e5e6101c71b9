"""A tiny HTTP server whose misbehaviour is chosen on the command line.

    python toy_server.py --port N [--mode MODE] [--delay S] [--listen-file PATH] [--exit-code C]

Modes:
  behave         answer GET /health with 200, exit on SIGTERM
  ignore-term    like behave, but ignore SIGTERM (only SIGKILL stops it)
  crash          print a message and exit with --exit-code (after --delay) before listening
  fork-child     fork a child that calls setsid and keeps the listening socket; the parent
                 closes its copy and sleeps, so only the child holds the port
  daemon         like fork-child, but the server runs in a grandchild re-parented to init
  health-503     answer /health with 503 forever (never ready)
  note-term      like ignore-term, but each SIGTERM appends "term <pid> <n>" to --signal-log,
                 n being how many of the other pids in --pid-file were still running then
  daemonise      fork a daemon (setsid, second fork) and exit 0 at once, like a server that
                 goes to the background; the daemon binds after --delay and serves

--delay sleeps before binding (a slow start). --pid-file collects the pid of every process
of the server (parent and forked children). --echo-env prints an environment variable, as a
careless server might print a secret. --listen-file receives time.time() at the
moment the socket starts listening (in crash mode: the moment it gives up), for the lifecycle
benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    health_status = 200

    def do_GET(self) -> None:
        status = self.health_status if self.path.startswith("/health") else 200
        body = f"pid={os.getpid()}\n".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stdout.write(f"request {format % args}\n")


def make_server(port: int) -> HTTPServer:
    server = HTTPServer(("127.0.0.1", port), Handler, bind_and_activate=False)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.server_bind()
    server.server_activate()
    return server


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed child its parent has not waited for yet)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


def _note_term(signal_log: str, pid_file: str) -> None:
    """Note a SIGTERM and how many other servers of the pid file were alive to get theirs."""
    others = 0
    with open(pid_file) as handle:
        for line in handle.read().split():
            pid = int(line)
            if pid == os.getpid():
                continue
            others += _running(pid)
    with open(signal_log, "a") as handle:
        handle.write(f"term {os.getpid()} {others}\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", default="behave")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--listen-file")
    parser.add_argument("--exit-code", type=int, default=3)
    parser.add_argument("--pid-file", help="write the pid of every process serving here")
    parser.add_argument("--signal-log", help="note-term: where each SIGTERM is noted")
    parser.add_argument("--echo-env", help="print this environment variable (a leaky server)")
    args = parser.parse_args()

    print(f"toy server pid={os.getpid()} mode={args.mode} port={args.port}", flush=True)
    if args.echo_env:
        print(f"{args.echo_env}={os.environ.get(args.echo_env, '')}", flush=True)
    if args.delay and args.mode != "daemonise":
        time.sleep(args.delay)
    if args.mode == "crash":
        print("fatal: configuration is broken, giving up", flush=True)
        if args.listen_file:
            with open(args.listen_file, "w") as handle:
                handle.write(repr(time.time()))
        return args.exit_code
    if args.mode == "daemonise":
        if os.fork() != 0:
            return 0  # the parent returns at once, as a daemonising server does
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        if args.pid_file:
            with open(args.pid_file, "a") as handle:
                handle.write(f"{os.getpid()}\n")
        time.sleep(args.delay)
        make_server(args.port).serve_forever()
        os._exit(0)
    if args.mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.mode == "note-term":
        signal.signal(signal.SIGTERM, lambda *_: _note_term(args.signal_log, args.pid_file))
    if args.mode == "health-503":
        Handler.health_status = 503
    try:
        server = make_server(args.port)
    except OSError as exc:
        print(f"cannot listen on port {args.port}: {exc}", flush=True)
        return 1
    if args.listen_file:
        with open(args.listen_file, "w") as handle:
            handle.write(repr(time.time()))
    print(f"listening on 127.0.0.1:{args.port}", flush=True)

    if args.mode in ("fork-child", "daemon"):
        pid = os.fork()
        if pid == 0:
            os.setsid()
            if args.mode == "daemon" and os.fork() != 0:
                os._exit(0)  # the grandchild serves; it is re-parented to init
            if args.pid_file:
                with open(args.pid_file, "a") as handle:
                    handle.write(f"{os.getpid()}\n")
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            server.serve_forever()
            os._exit(0)
        server.socket.close()  # only the child keeps the port
        if args.pid_file:
            with open(args.pid_file, "a") as handle:
                handle.write(f"{os.getpid()}\n")
        while True:
            time.sleep(3600)
    if args.pid_file:
        with open(args.pid_file, "a") as handle:
            handle.write(f"{os.getpid()}\n")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
