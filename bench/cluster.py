"""
One chatroom process against three processes sharing one Redis: what Redis
costs per message, and where the throughput limit moves.

    .venv/bin/python -m bench.cluster                  # A, B, C x 5 scenarios x 3 reps: ~15 min
    .venv/bin/python -m bench.cluster --reps 1 --duration 5 --configs A C
    .venv/bin/python -m bench.cluster --smoke --engine python   # tiny sizes, 1 rep, < 60 s

Configurations, each measured on a freshly started set of servers (and, for
B and C, a fresh private redis-server on a free port in a new temporary
directory, C{--appendonly yes --appendfsync everysec --save ''}):

  - A: one process, files (the default store): the baseline;
  - B: one process on Redis (C{--store redis://...});
  - C: three processes on one Redis, the clients spread evenly over them:
    every room has members on every process, so every message crosses
    processes through Redis.

The servers run with the options of C{python -m bench} (flood control and
the per-address limits off, bcrypt at cost 4, history on).

Scenarios, as in C{python -m bench}: fan-out (1 room x 100 members and 10
rooms x 50, 5 senders per room with 8 messages each in flight: deliveries/s)
and latency at a fixed offered rate into 1 room x 100 members (500 and 2,000
messages/s: p50/p99/max of every copy received).  One more, fan-out 1 x 100
with 32 messages per sender in flight (C{fanout_1x100_w32}): with Redis in
the loop, 40 messages in flight leave the CPUs idle part of the time (the
loop waits on round trips), and 160 show where the CPU limit is.

How C is driven: one load generator per server process, started together,
each with its third of every room's members (C{--members 34/33/33}, the same
C{--room-prefix}, its own C{--name-prefix}); deliveries are summed over the
three.  No TCP balancer: one in front would copy every delivered byte
through a fourth process on the same two cores and measure itself as much
as the servers.

  - Fan-out: all 5 senders of a room are on the first process, and the
    members on the other two only receive.  The load generator numbers its
    senders from 0 and a sender takes any echo carrying its number as its
    own acknowledgement, so senders in two instances would acknowledge each
    other's messages and the closed loop would run away.  Every message
    still crosses processes (two thirds of each room are elsewhere), but the
    first process also parses every incoming message, and the closed loop
    is paced by its echoes only.
  - Latency (open loop, no acknowledgements): the senders are spread too
    (10 = 4+3+3), each load generator offering its share of the rate in
    proportion to its senders.  Each counts every message of the room, the
    others' too, so the latency columns are the worst of the three load
    generators' p50, p99 and max (each sees every message, at its own third
    of the members), and the received fraction is copies received / (all
    messages scheduled in each one's window x its members), which the tens
    of milliseconds between the three windows ("skew_s" in the JSON) blur
    by about that much over the window.  A load generator stops waiting
    for late copies once it has as many as its own messages make, so
    copies still in flight when the window closes are not waited for: an
    overloaded C shows as a received fraction below 1.

CPU: C{/proc} is sampled every 0.1 s for every server process and
redis-server (all threads, AOF fsync included) and for the whole machine;
each figure is over the measured window (trimmed by 0.5 s at each end to
stay inside it), in % of one core.  The load generator's CPU is its own
report.  "softirq" is the machine's interrupt time (/proc/stat irq +
softirq): mostly the kernel's loopback TCP, which the kernel may charge in
part to the process it interrupted too, so the columns can add up to a
little more than the machine's cores.  "other" is whatever else ran (other
work on the machine).  "µs/msg" is CPU time per message
delivered to its room (deliveries / members), for the servers together
and for Redis.  The machine's CPU count is printed with the table: the
servers, Redis and the load generators share those cores.

The machine may be shared: before each measurement the harness waits (10 s
at most) for it to be idle, and a measurement during which other work took
more than 25% of a core is done again once (C{--max-other}, C{--retries},
C{--quiet-wait}); the discarded ones stay in the JSON.

The load generator is bench/loadgen's native engine when cargo builds it
(C{--engine auto}, the default), else its Python engine.  Raw results, one
JSON object per measurement with every load generator's output, go to
C{results.jsonl} in a new temporary directory whose path is printed first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.__main__ import HERE, chatroom, check_history, free_port, loadgen, stop, wait_port

CONFIGS = {
    "A": "1 process, files",
    "B": "1 process, Redis",
    "C": "3 processes, 1 Redis",
}
PROCESSES = {"A": 1, "B": 1, "C": 3}
NAME_PREFIXES = ("a", "b", "c")
CLK_TCK = os.sysconf("SC_CLK_TCK")
SAMPLE_S = 0.1


@dataclass(frozen=True)
class Scenario:
    """
    One load: R rooms x N members, S senders per room; a closed loop with
    C{window} messages in flight per sender (fanout) or an open loop at
    C{rate} messages/s over all rooms (latency).
    """

    kind: str
    rooms: int
    members: int
    senders: int
    window: int = 8
    rate: float = 0.0
    warmup: float = 3.0
    duration: float = 10.0
    settle: float = 1.0
    drain: float = 3.0

    def shares(self, parts: int) -> list[Scenario]:
        """
        This load cut in C{parts}, one per load generator: the members of
        every room as evenly as they go.  In the latency scenarios the
        senders too, with the offered rate in proportion; in fan-out every
        sender stays with the first (see the module's docstring).
        """
        if parts == 1:
            return [self]
        members = split(self.members, parts)
        if self.kind == "fanout":
            senders = [self.senders] + [0] * (parts - 1)
        else:
            senders = split(self.senders, parts)
        return [
            replace(
                self,
                members=m,
                senders=s,
                rate=round(self.rate * s / self.senders, 3) if self.rate else 0.0,
            )
            for m, s in zip(members, senders, strict=True)
        ]

    def arguments(self) -> str:
        words = [
            self.kind,
            f"--rooms {self.rooms}",
            f"--members {self.members}",
            f"--senders {self.senders}",
            f"--warmup {self.warmup}",
            f"--duration {self.duration}",
            f"--settle {self.settle}",
            f"--drain {self.drain}",
        ]
        if self.kind == "fanout":
            words.append(f"--window {self.window}")
        else:
            words.append(f"--rate {self.rate}")
        return " ".join(words)


SCENARIOS = {
    "fanout_1x100": Scenario("fanout", rooms=1, members=100, senders=5),
    "fanout_10x50": Scenario("fanout", rooms=10, members=50, senders=5),
    "fanout_1x100_w32": Scenario("fanout", rooms=1, members=100, senders=5, window=32),
    "latency_500": Scenario(
        "latency", rooms=1, members=100, senders=10, rate=500, warmup=2, drain=5
    ),
    "latency_2000": Scenario(
        "latency", rooms=1, members=100, senders=10, rate=2000, warmup=2, drain=5
    ),
}
SMOKE = {
    "fanout_tiny": Scenario(
        "fanout", rooms=1, members=12, senders=3, window=2, warmup=0.5, duration=1, settle=0.2
    ),
    "latency_tiny": Scenario(
        "latency",
        rooms=1,
        members=12,
        senders=3,
        rate=60,
        warmup=0.5,
        duration=1,
        settle=0.2,
        drain=1,
    ),
}


def split(total: int, parts: int) -> list[int]:
    """
    C{total} in C{parts} whole shares, the larger first: 100 in 3 is 34,
    33, 33.
    """
    return [total // parts + (1 if k < total % parts else 0) for k in range(parts)]


# ------------------------------------------------------------------ Redis


@contextmanager
def redis_server(work: Path) -> Iterator[tuple[int, int]]:
    """
    A fresh private redis-server on a free loopback port, in a new
    directory: yields its port and PID.
    """
    port = free_port()
    directory = Path(tempfile.mkdtemp(dir=work, prefix="redis-"))
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--logfile",
            str(directory / "redis.log"),
        ],
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield port, process.pid
    finally:
        stop(process)


def redis_call(port: int, *words: str | int) -> Any:
    """
    One command on a new connection; the decoded reply.
    """
    import hiredis

    parts = [str(w).encode() for w in words]
    request = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
    reader = hiredis.Reader(encoding="utf-8")
    with socket.create_connection(("127.0.0.1", port), 10) as s:
        s.sendall(request)
        while True:
            reply = reader.gets()
            if reply is not False:
                if isinstance(reply, hiredis.ReplyError):
                    raise RuntimeError(f"redis: {reply}")
                return reply
            data = s.recv(65536)
            if not data:
                raise RuntimeError("redis closed the connection")
            reader.feed(data)


def redis_figures(port: int) -> dict[str, Any]:
    """
    Messages added to the room histories since Redis started (trimming
    does not lower it), and the script calls that did it.
    """
    added = 0
    for key in redis_call(port, "KEYS", "chatroom:history:*"):
        info = redis_call(port, "XINFO", "STREAM", key)
        added += int(dict(zip(info[::2], info[1::2], strict=False))["entries-added"])
    stats: dict[str, dict[str, str]] = {}
    for line in redis_call(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, _, values = line.partition(":")
            stats[name[8:]] = dict(v.split("=", 1) for v in values.split(","))
    evalsha = stats.get("evalsha", {})
    xread = stats.get("xread", {})
    return {
        "history_entries_added": added,
        "evalsha_calls": int(evalsha.get("calls", 0)),
        "evalsha_usec_per_call": float(evalsha.get("usec_per_call", 0)),
        "xread_calls": int(xread.get("calls", 0)),
        "xread_usec_per_call": float(xread.get("usec_per_call", 0)),
    }


# ------------------------------------------------------------- server sets


@dataclass
class ServerSet:
    """
    The servers of one measurement: chatroom processes and maybe Redis.
    """

    ports: list[int]
    pids: list[int]
    data: list[Path]
    redis_port: int | None = None
    redis_pid: int | None = None


@contextmanager
def server_set(work: Path, config: str) -> Iterator[ServerSet]:
    with ExitStack() as stack:
        options: list[str] = []
        servers = ServerSet([], [], [])
        if config != "A":
            servers.redis_port, servers.redis_pid = stack.enter_context(redis_server(work))
            options = ["--store", f"redis://127.0.0.1:{servers.redis_port}/0"]
        for _ in range(PROCESSES[config]):
            port, pid, data = stack.enter_context(chatroom(work, *options))
            servers.ports.append(port)
            servers.pids.append(pid)
            servers.data.append(data)
        yield servers


# -------------------------------------------------------------------- CPU


def cpu_seconds(pid: int) -> float:
    """
    User + system CPU seconds of a process, all its threads; 0 once gone.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_jiffies() -> tuple[int, int, int]:
    """
    Total, idle (idle + iowait) and interrupt (irq + softirq: loopback TCP
    is mostly softirq, charged to no process) jiffies of the whole machine.
    """
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:9]]
    return sum(values), values[3] + values[4], values[5] + values[6]


@dataclass
class Sample:
    t: float
    cpu: dict[int, float]
    machine: tuple[int, int, int]


@dataclass
class Sampler:
    """
    Samples the CPU time of C{pids} and of the machine every
    C{SAMPLE_S} seconds, in a thread, until stopped.
    """

    pids: list[int]
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def take(self) -> None:
        cpu = {pid: cpu_seconds(pid) for pid in self.pids}
        self.samples.append(Sample(time.monotonic(), cpu, machine_jiffies()))

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.is_set():
                self.take()
                self._stop.wait(SAMPLE_S)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def between(self, t0: float, t1: float) -> tuple[dict[int, float], float, float, float]:
        """
        CPU% of each PID, the machine's busy and interrupt CPU% (of one
        core, as the others) over the samples that [t0, t1] holds, and the
        seconds they span.
        """
        inside = [s for s in self.samples if t0 <= s.t <= t1]
        if len(inside) < 2:
            inside = self.samples[-2:] if t1 <= t0 else self._nearest(t0, t1)
        a, b = inside[0], inside[-1]
        wall = max(b.t - a.t, 1e-9)
        cpu = {pid: round(100 * (b.cpu[pid] - a.cpu[pid]) / wall, 1) for pid in self.pids}
        total = max(1, b.machine[0] - a.machine[0]) / (os.cpu_count() or 1)
        busy = round(
            100 * (total * (os.cpu_count() or 1) - (b.machine[1] - a.machine[1])) / total, 1
        )
        interrupts = round(100 * (b.machine[2] - a.machine[2]) / total, 1)
        return cpu, busy, interrupts, wall

    def _nearest(self, t0: float, t1: float) -> list[Sample]:
        before = [s for s in self.samples if s.t <= t0] or self.samples[:1]
        after = [s for s in self.samples if s.t >= t1] or self.samples[-1:]
        return [before[-1], after[0]]


# -------------------------------------------------------------- measuring


def measure(
    work: Path, config: str, name: str, scenario: Scenario, rep: int, engine: str
) -> dict[str, Any]:
    """
    One measurement on a fresh server set: one load generator per server
    process, started together; returns the combined record.
    """
    label = f"{config}:{name}:{rep}"
    print(label, file=sys.stderr, flush=True)
    with server_set(work, config) as servers:
        n = len(servers.ports)
        shares = scenario.shares(n)
        watched = servers.pids + ([servers.redis_pid] if servers.redis_pid else [])
        sampler = Sampler(watched)
        sampler.start()
        runs = []
        for k, (port, pid, share) in enumerate(
            zip(servers.ports, servers.pids, shares, strict=True)
        ):
            out = work / f"{config}-{name}-{rep}-{k}.json"
            arguments = share.arguments()
            if n > 1:
                arguments += f" --name-prefix {NAME_PREFIXES[k]}"
            launched = time.monotonic()
            process = loadgen("chatroom", port, pid, arguments, f"{label}:{k}", out, engine)
            runs.append((process, out, launched, share))
        for process, *_ in runs:
            process.wait()
        sampler.stop()
        outputs = []
        for _, out, launched, share in runs:
            lines = out.read_text().splitlines() if out.exists() else []
            result = json.loads(lines[-1]) if lines else {"errors": ["no output"]}
            result["_launched"] = launched
            result["_share"] = share
            outputs.append(result)
        record = combine(config, name, scenario, rep, outputs, sampler, servers)
        if servers.redis_port is not None:
            record.update(redis_figures(servers.redis_port))
            if scenario.kind == "fanout" and record.get("acked_msgs"):
                verdict = (
                    "ok" if record["history_entries_added"] >= record["acked_msgs"] else "MISSING"
                )
                if verdict != "ok":
                    record.setdefault("errors", []).append("messages missing from Redis")
                print(
                    f"  history: {record['history_entries_added']} entries added in Redis, "
                    f">= {record['acked_msgs']} acknowledged: {verdict}",
                    file=sys.stderr,
                )
        elif scenario.kind == "fanout":
            check_history(servers.data[0], runs[0][1], label)
    return record


def combine(
    config: str,
    name: str,
    scenario: Scenario,
    rep: int,
    outputs: list[dict[str, Any]],
    sampler: Sampler,
    servers: ServerSet,
) -> dict[str, Any]:
    """
    The load generators' outputs and the CPU samples as one record.
    """
    record: dict[str, Any] = {
        "config": config,
        "scenario": name,
        "kind": scenario.kind,
        "rep": rep,
        "processes": len(servers.pids),
        "engine": outputs[0].get("engine"),
        "loadgens": [{k: v for k, v in o.items() if not k.startswith("_")} for o in outputs],
    }
    errors = [e for o in outputs for e in (o.get("errors") or [])]
    errors += [
        f"{o['server_error_lines']} ERR lines" for o in outputs if o.get("server_error_lines")
    ]
    errors += [f"{o['disconnects']} disconnects" for o in outputs if o.get("disconnects")]
    if any("wall_s" not in o for o in outputs):
        record["errors"] = errors or ["a load generator measured nothing"]
        return record
    record["errors"] = errors
    # Each load generator's measured window, on this process's clock (the
    # load generators' CLOCK_MONOTONIC too), from its launch and its report.
    starts, ends = [], []
    for o in outputs:
        share: Scenario = o["_share"]
        start = o["_launched"] + o.get("setup_s", 0) + share.settle + share.warmup
        starts.append(start)
        ends.append(start + o["wall_s"])
    record["skew_s"] = round(max(starts) - min(starts), 3)
    trim = min(0.5, scenario.duration / 10)
    cpu, busy, interrupts, wall = sampler.between(max(starts) + trim, min(ends) - trim)
    record["cpu_window_s"] = round(wall, 2)
    record["server_cpu_pct"] = [cpu[pid] for pid in servers.pids]
    record["redis_cpu_pct"] = cpu[servers.redis_pid] if servers.redis_pid else 0.0
    record["loadgen_cpu_pct"] = round(sum(o.get("loadgen_cpu_pct", 0) for o in outputs), 1)
    record["machine_busy_pct"] = busy
    record["softirq_cpu_pct"] = interrupts
    record["other_cpu_pct"] = round(
        max(
            0.0,
            busy
            - interrupts
            - sum(record["server_cpu_pct"])
            - record["redis_cpu_pct"]
            - record["loadgen_cpu_pct"],
        ),
        1,
    )
    deliveries = sum(o.get("deliveries_per_s", 0) for o in outputs)
    record["deliveries_per_s"] = deliveries
    if scenario.kind == "fanout":
        record["msgs_per_s"] = sum(o.get("msgs_per_s", 0) for o in outputs)
        record["acked_msgs"] = round(sum(o["msgs_per_s"] * o["wall_s"] for o in outputs))
    else:
        offered = sum(o.get("offered_msgs_per_s", 0) for o in outputs)
        members = scenario.members * scenario.rooms
        record["offered_deliveries_per_s"] = offered * members
        record["msgs_per_s"] = round(deliveries / members)
        if len(outputs) == 1:
            record["received_fraction"] = outputs[0].get("received_fraction")
        else:
            expected = sum(
                offered * o["wall_s"] * o["_share"].members * o["_share"].rooms for o in outputs
            )
            received = sum(o.get("copies_received", 0) for o in outputs)
            record["received_fraction"] = round(received / expected, 4) if expected else None
        for key in ("p50_ms", "p99_ms", "max_ms"):
            values = [o[key] for o in outputs if o.get(key) is not None]
            record[key] = max(values) if values else None
    if record["msgs_per_s"]:
        per_msg = 1e4 / record["msgs_per_s"]  # CPU% -> µs of CPU per message
        record["server_us_per_msg"] = round(sum(record["server_cpu_pct"]) * per_msg, 1)
        record["redis_us_per_msg"] = round(record["redis_cpu_pct"] * per_msg, 1)
    return record


# -------------------------------------------------------------- reporting


def number(value: float, digits: int = 0) -> str:
    if abs(value) >= 1e6:
        return f"{value / 1e6:.2f} M"
    if digits:
        return f"{value:.{digits}f}"
    return f"{round(value):,}"


def cell(values: Sequence[float | None], digits: int = 0) -> str:
    """
    The median and, when they differ, the range: "1.23 M (1.20 M-1.25 M)".
    """
    present = [v for v in values if v is not None]
    if not present:
        return "-"
    median = number(statistics.median(present), digits)
    low, high = number(min(present), digits), number(max(present), digits)
    return median if low == high else f"{median} ({low}-{high})"


def server_cell(records: list[dict[str, Any]]) -> str:
    """
    The servers' CPU% summed, and each process's median when there are several.
    """
    totals = [sum(r["server_cpu_pct"]) for r in records]
    text = cell(totals)
    count = len(records[0]["server_cpu_pct"])
    if count > 1:
        each = [statistics.median(r["server_cpu_pct"][k] for r in records) for k in range(count)]
        text += " = " + "+".join(f"{v:.0f}" for v in each)
    return text


def report(records: list[dict[str, Any]], engine: str) -> str:
    """
    The Markdown tables: one row per scenario and configuration.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["scenario"], r["config"]), []).append(r)
    lines = [
        f"Machine: {os.cpu_count()} CPUs ({cpu_model()}), shared by the chatroom processes, "
        f"redis-server and the load generator(s); load generator engine {engine}. "
        "CPU% is of one core; cells are median (min-max) over "
        f"{max(len(g) for g in groups.values()) if groups else 0} runs.",
    ]
    fanout = [k for k in groups if groups[k][0]["kind"] == "fanout"]
    latency = [k for k in groups if groups[k][0]["kind"] == "latency"]
    if fanout:
        lines += [
            "",
            "| scenario | config | deliveries/s | msgs/s | server CPU% | Redis CPU% "
            "| loadgen CPU% | softirq CPU% | other CPU% | µs/msg servers | µs/msg Redis "
            "| errors |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key in fanout:
            lines.append(row(key, groups[key], ["deliveries_per_s", "msgs_per_s"]))
    if latency:
        lines += [
            "",
            "| scenario | config | offered deliv/s | deliv/s | recv frac | p50 ms | p99 ms "
            "| max ms | server CPU% | Redis CPU% | loadgen CPU% | softirq CPU% | other CPU% "
            "| µs/msg servers | µs/msg Redis | errors |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key in latency:
            lines.append(
                row(
                    key,
                    groups[key],
                    [
                        "offered_deliveries_per_s",
                        "deliveries_per_s",
                        ("received_fraction", 3),
                        ("p50_ms", 2),
                        ("p99_ms", 1),
                        ("max_ms", 0),
                    ],
                )
            )
    return "\n".join(lines)


def row(key: tuple[str, str], records: list[dict[str, Any]], columns: list[Any]) -> str:
    scenario, config = key
    good = [r for r in records if "deliveries_per_s" in r]
    cells = [scenario, f"{config}: {CONFIGS[config]}"]
    for column in columns:
        name, digits = column if isinstance(column, tuple) else (column, 0)
        cells.append(cell([r.get(name) for r in good], digits))
    cells.append(server_cell(good) if good else "-")
    for name in ("redis_cpu_pct", "loadgen_cpu_pct", "softirq_cpu_pct", "other_cpu_pct"):
        cells.append(cell([r.get(name) for r in good]))
    cells.append(cell([r.get("server_us_per_msg") for r in good], 1))
    cells.append(cell([r.get("redis_us_per_msg") for r in good], 1))
    failed = sum(1 for r in records if r.get("errors"))
    cells.append(str(failed) if failed else "")
    return "| " + " | ".join(cells) + " |"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# ------------------------------------------------------------------- main


def pick_engine(engine: str) -> str:
    """
    C{auto}: the native engine when cargo builds it (as bench/loadgen
    would on first use), else the Python one.
    """
    if engine != "auto":
        return engine
    if shutil.which("cargo") is None:
        print("cargo not found: using the python load generator", file=sys.stderr)
        return "python"
    fastgen = HERE / "loadgen" / "fastgen"
    target = os.environ.get("FASTGEN_TARGET_DIR") or (
        str(fastgen / "target")
        if os.access(fastgen, os.W_OK)
        else f"/tmp/fastgen-target-{os.getuid()}"
    )
    built = subprocess.run(
        ["cargo", "build", "--release", "--offline", "-q", "--target-dir", target],
        cwd=fastgen,
        check=False,
    )
    if built.returncode:
        print("the native load generator did not build: using the python one", file=sys.stderr)
        return "python"
    return "native"


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    if shutil.which("redis-server") is None and set(args.configs) - {"A"}:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    engine = pick_engine(args.engine)
    work = Path(tempfile.mkdtemp(prefix="chatroom-cluster-bench-"))
    results = work / "results.jsonl"
    print(f"results: {results}", file=sys.stderr)
    table = SMOKE if args.smoke else SCENARIOS
    records = []
    all_records = []
    for name in args.scenarios or list(table):
        scenario = table[name]
        if args.duration is not None:
            scenario = replace(scenario, duration=args.duration)
        for rep in range(1, args.reps + 1):
            for config in args.configs:
                for attempt in range(args.retries + 1):
                    if args.quiet_wait:
                        wait_quiet(args.quiet_wait)
                    record = measure(work, config, name, scenario, rep, engine)
                    noisy = record.get("other_cpu_pct", 0) > args.max_other
                    last = attempt == args.retries
                    record["attempt"] = attempt + 1
                    record["discarded"] = noisy and not last
                    all_records.append(record)
                    with results.open("a") as f:
                        f.write(json.dumps(record) + "\n")
                    if not record["discarded"]:
                        records.append(record)
                        break
                    print(
                        f"  other work on the machine took {record['other_cpu_pct']}% "
                        "of a core: measuring again",
                        file=sys.stderr,
                    )
    print(report(records, engine))
    redone = sum(1 for r in all_records if r["discarded"])
    still = sum(1 for r in records if r.get("other_cpu_pct", 0) > args.max_other)
    print(
        f"\n{redone} measurement(s) done again because other work on the machine took more "
        f"than {args.max_other:g}% of a core; {still} kept still over it (see other CPU%)."
    )
    return records


def wait_quiet(limit: float, threshold: float = 15.0) -> None:
    """
    Wait, C{limit} seconds at most, for the machine to be idle: under
    C{threshold}% of one core busy over half a second.
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        total0, idle0, _ = machine_jiffies()
        time.sleep(0.5)
        total1, idle1, _ = machine_jiffies()
        per_core = max(1, total1 - total0) / (os.cpu_count() or 1)
        if 100 * ((total1 - total0) - (idle1 - idle0)) / per_core < threshold:
            return


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=float, help="measured seconds of every run")
    parser.add_argument("--engine", choices=["auto", "native", "python"], default="auto")
    parser.add_argument(
        "--max-other",
        type=float,
        default=25.0,
        help="CPU%% of one core that other work on the machine may take in a measurement "
        "before it is measured again (default 25)",
    )
    parser.add_argument(
        "--retries", type=int, default=1, help="how many times a noisy measurement is redone"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="seconds to wait at most, before each measurement, for the machine to be idle",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 rep: < 60 s")
    args = parser.parse_args(argv)
    if args.smoke:
        args.reps = 1
        args.scenarios = list(SMOKE)
        args.retries = 0
        args.quiet_wait = 0
    records = run(args)
    if any(r.get("errors") for r in records):
        sys.exit(1)


if __name__ == "__main__":
    main()
