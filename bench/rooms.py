"""
The room list under load: with 10,000 rooms, does one connection asking
for C{/rooms} ten times a second slow everyone else's chat?

    .venv/bin/python -m bench.rooms                  # 10,000 rooms, 3 runs: about 2 min
    .venv/bin/python -m bench.rooms --rooms 19001 --rate 20 --reps 1
    .venv/bin/python -m bench.rooms --smoke          # tiny sizes: does the harness work?

Each run starts a fresh server with the options of C{python -m bench}
(flood control and the per-address limits off, bcrypt at cost 4, history
on) on a data directory seeded with C{--rooms} room files, then measures
the chat latency of one room with the shared load generator (its latency
scenario: C{--members} members, C{--senders} of them sending
C{--chat-rate} messages a second in all, open loop; every copy received is
timed from its scheduled send), twice: once quiet, once while another
connection sends C{/rooms} C{--rate} times a second (open loop, whatever
the answers do) and reads every list, and a third one moves from room to
room C{--churn} times a second, so that populations keep changing and
most lists have to be brought up to date before they are sent.  It prints
p50, p99 and the maximum of the chat's latency in both phases, and how
long each C{/rooms} took to come back (from its send to its C{END
rooms}): medians over the runs, with the range.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.__main__ import LOADGEN, chatroom
from bench.cluster import pick_engine

#: The room the latency probe chats in; seeded like the others, so that no
#: room has to be created (and no creation limit gets in the way).
CHAT_ROOM = "chat0"


def seed(directory: Path, rooms: int) -> Path:
    """
    A data directory with C{rooms} rooms in all: C{general}, the probe's
    room and C{room00001}... as empty files.
    """
    data = Path(tempfile.mkdtemp(dir=directory, prefix="rooms-"))
    folder = data / "rooms"
    folder.mkdir()
    names = ["general", CHAT_ROOM] + [f"room{i:05d}" for i in range(1, max(0, rooms - 2) + 1)]
    for name in names[: max(rooms, 2)]:
        (folder / f"{name}.log").touch()
    return data


class Churner:
    """
    One connection that joins another room C{rate} times a second: every
    join changes two rooms' populations.
    """

    def __init__(self, port: int, rate: float, rooms: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.rate = rate
        self.rooms = max(1, rooms - 2)
        self.running = True
        self.sock.sendall(b"/register churner password1\n/login churner password1\n")
        self.threads = [
            threading.Thread(target=self._send, daemon=True),
            threading.Thread(target=self._drain, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _send(self) -> None:
        start = time.monotonic()
        i = 0
        while self.running and self.rate > 0:
            delay = start + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            room = 1 + (i * 7919) % self.rooms
            self.sock.sendall(b"/join room%05d\n" % room)
            i += 1

    def _drain(self) -> None:
        while self.running:
            try:
                if not self.sock.recv(1 << 16):
                    return
            except OSError:
                return

    def stop(self) -> None:
        self.running = False
        self.threads[0].join()
        self.sock.close()


class Lister:
    """
    One connection that sends C{/rooms} C{rate} times a second, on a
    schedule that does not wait for the answers, and times each answer.
    """

    def __init__(self, port: int, rate: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.file = self.sock.makefile("rb")
        self.rate = rate
        self.sent: list[float] = []
        self.answered: list[float] = []
        self.bytes = 0
        self.running = True
        self.file.readline()
        self.sock.sendall(b"/register lister password1\n")
        first = self.file.readline()
        if first.startswith(b"ERR name-taken"):
            self.sock.sendall(b"/login lister password1\n")
        self._until_end()
        self.threads = [
            threading.Thread(target=self._send, daemon=True),
            threading.Thread(target=self._read, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _until_end(self) -> int:
        size = 0
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError("the server closed the lister's connection")
            size += len(line)
            if line.startswith(b"END rooms"):
                return size

    def _send(self) -> None:
        start = time.monotonic()
        i = 0
        while self.running:
            due = start + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.sent.append(time.monotonic())
            self.sock.sendall(b"/rooms\n")
            i += 1

    def _read(self) -> None:
        while self.running:
            try:
                size = self._until_end()
            except (EOFError, OSError, ValueError):
                return
            self.answered.append(time.monotonic())
            self.bytes = size

    def stop(self) -> dict[str, Any]:
        self.running = False
        for thread in self.threads[:1]:
            thread.join()
        # Wait a little for the answers still due.
        deadline = time.monotonic() + 10
        while len(self.answered) < len(self.sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.sock.close()
        waits = sorted(a - s for s, a in zip(self.sent, self.answered, strict=False))
        return {
            "requests": len(self.sent),
            "answered": len(self.answered),
            "list_bytes": self.bytes,
            "rooms_p50_ms": round(_pct(waits, 50) * 1e3, 2) if waits else None,
            "rooms_p99_ms": round(_pct(waits, 99) * 1e3, 2) if waits else None,
        }


def _pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def probe(port: int, pid: int, args: argparse.Namespace, engine: str, out: Path) -> dict[str, Any]:
    """
    One latency measurement of the chat room, by the shared load generator.
    """
    command = [
        sys.executable,
        str(LOADGEN),
        "latency",
        "--rooms",
        "1",
        "--room-prefix",
        CHAT_ROOM[:-1],
        "--members",
        str(args.members),
        "--senders",
        str(args.senders),
        "--rate",
        str(args.chat_rate),
        "--warmup",
        str(args.warmup),
        "--duration",
        str(args.duration),
        "--drain",
        str(args.drain),
        "--engine",
        engine,
        "--port",
        str(port),
        "--proto",
        "chatroom",
        "--password",
        "password1",
        "--server-pid",
        str(pid),
        "--concurrency",
        "10",
        "--json",
        str(out),
        "--max-time",
        "300",
    ]
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
    return dict(json.loads(out.read_text().splitlines()[-1]))


def run_once(work: Path, args: argparse.Namespace, engine: str, rep: int) -> dict[str, Any]:
    data = seed(work, args.rooms)
    results = work / f"run{rep}.jsonl"
    with chatroom(work, "--data", str(data)) as (port, pid, _):
        quiet = probe(port, pid, args, engine, results)
        churner = Churner(port, args.churn, args.rooms)
        lister = Lister(port, args.rate)
        try:
            loaded = probe(port, pid, args, engine, results)
        finally:
            listed = lister.stop()
            churner.stop()
    record = {"rep": rep, "quiet": quiet, "loaded": loaded, "lister": listed}
    print(
        f"run {rep}: quiet p50 {quiet.get('p50_ms')} p99 {quiet.get('p99_ms')} ms; "
        f"with /rooms p50 {loaded.get('p50_ms')} p99 {loaded.get('p99_ms')} ms; "
        f"/rooms answered {listed['answered']}/{listed['requests']}, "
        f"p50 {listed['rooms_p50_ms']} ms, {listed['list_bytes']} bytes each",
        file=sys.stderr,
    )
    shutil.rmtree(data, ignore_errors=True)
    return record


def cell(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    median = statistics.median(present)
    low, high = min(present), max(present)
    return f"{median:.2f}" if low == high else f"{median:.2f} ({low:.2f}-{high:.2f})"


def report(records: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"{args.rooms} rooms; chat: 1 room of {args.members}, {args.senders} senders, "
        f"{args.chat_rate:g} msgs/s; /rooms {args.rate:g} a second from one connection, "
        f"{args.churn:g} joins a second from another; "
        f"median (min-max) of {len(records)} run(s), ms",
        "",
        "| phase | chat p50 | chat p99 | chat max | received | /rooms p50 | /rooms p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for phase in ("quiet", "loaded"):
        rows = [r[phase] for r in records]
        listed = [r["lister"] for r in records] if phase == "loaded" else []
        lines.append(
            f"| {'with /rooms' if phase == 'loaded' else 'quiet'} "
            f"| {cell([r.get('p50_ms') for r in rows])} "
            f"| {cell([r.get('p99_ms') for r in rows])} "
            f"| {cell([r.get('max_ms') for r in rows])} "
            f"| {cell([r.get('received_fraction') for r in rows])} "
            f"| {cell([r['rooms_p50_ms'] for r in listed])} "
            f"| {cell([r['rooms_p99_ms'] for r in listed])} |"
        )
    if records:
        lister = records[-1]["lister"]
        lines.append("")
        lines.append(f"each room list: {lister['list_bytes']:,} bytes")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.rooms",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rooms", type=int, default=10_000, help="rooms in all (default 10000)")
    parser.add_argument("--rate", type=float, default=10.0, help="/rooms a second (default 10)")
    parser.add_argument(
        "--churn", type=float, default=20.0, help="joins a second meanwhile (default 20)"
    )
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--senders", type=int, default=5)
    parser.add_argument("--chat-rate", type=float, default=200.0, help="messages a second")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--drain", type=float, default=3.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--engine", choices=["auto", "native", "python"], default="auto")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 run, python engine")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rooms, args.members, args.senders, args.chat_rate = 50, 4, 2, 20.0
        args.warmup, args.duration, args.drain = 0.5, 1.0, 1.0
        args.reps, args.engine = 1, "python"
    engine = pick_engine(args.engine)
    work = Path(tempfile.mkdtemp(prefix="chatroom-rooms-bench-"))
    records = [run_once(work, args, engine, rep) for rep in range(1, args.reps + 1)]
    print(report(records, args))
    shutil.rmtree(work, ignore_errors=True)
    if any(r[phase].get("errors") for r in records for phase in ("quiet", "loaded")):
        sys.exit(1)


if __name__ == "__main__":
    main()
