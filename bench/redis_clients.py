"""
Compare three Redis clients on the load chatroom puts on Redis.

    .venv/bin/python -m bench.redis_clients                   # 3 repetitions, all clients
    .venv/bin/python -m bench.redis_clients --reps 1 --duration 2 --clients resp redis-py

The clients:

- C{resp}: chatroom's own C{chat.resp.RedisClient} (hiredis), on Twisted's
  default (epoll) reactor;
- C{txredisapi}: C{txredisapi.Connection} and its C{execute_command}, on the
  same reactor (it parses with hiredis when hiredis is installed, as it is
  here; C{txredisapi-pure} forces its pure-Python parser);
- C{redis-py}: C{redis.asyncio} with hiredis, on plain asyncio: the best
  case for running it under Twisted's asyncio reactor.

The workload is chatroom's hot path: one Lua script, called with EVALSHA,
appends 10 messages of about 60 bytes to a room's history stream (C{MAXLEN
~ 10000}) and one entry with all of them to the events stream (C{MAXLEN ~
100000}).  For each client this measures

1. throughput: script calls/s with 32 calls in flight, for C{--duration}
   seconds after a 1 s warm-up;
2. latency: one call at a time, median and p99 over 0.6 x C{--duration}
   seconds;
3. the reader side: entries/s read with C{XREAD COUNT 1000 STREAMS <key>
   <last-id>} in a loop over a pre-filled stream of 200,000 such events
   entries (about 700 bytes each), for C{--duration} seconds, starting over
   at the end of the stream;

with the client process's CPU time (C{time.process_time}) per call or per
entry.  Each measurement runs in a fresh subprocess against one private
redis-server (C{--save '' --appendonly no}, in a temporary directory),
flushed and filled again before each run; the clients take turns in each
repetition.  The table gives the median of the repetitions and their range.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import importlib.util
import json
import platform
import random
import shutil
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import hiredis

from bench.__main__ import free_port, stop

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ("resp", "txredisapi", "txredisapi-pure", "redis-py")
DEFAULT_CLIENTS = ("resp", "txredisapi", "redis-py")

WINDOW = 32  # calls in flight in the throughput test
WARMUP = 1.0  # seconds before the throughput is counted
MESSAGES_PER_CALL = 10
TEXT_BYTES = 60
ROOMS = 16
XREAD_COUNT = 1000
PREFILL = 200_000  # entries in the stream the reader test reads

EVENTS_KEY = "bench:events"
READ_KEY = "bench:events:prefilled"

#: What chatroom runs for each batch of messages: KEYS[1] the room's
#: history, KEYS[2] the events stream; ARGV the room, then (timestamp,
#: user, text) for each message.
SCRIPT = """\
local lines = {}
for i = 2, #ARGV, 3 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', '10000', '*',
             't', ARGV[i], 'u', ARGV[i + 1], 'm', ARGV[i + 2])
  lines[#lines + 1] = ARGV[i + 1] .. ' ' .. ARGV[i + 2]
end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', '100000', '*',
                  'k', 'M', 'r', ARGV[1], 'd', table.concat(lines, '\\n'))
"""
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()

#: Fills KEYS[1] with ARGV[1] entries like the ones SCRIPT adds to the
#: events stream, in one go on the server.
PREFILL_SCRIPT = """\
for i = 1, tonumber(ARGV[1]) do
  redis.call('XADD', KEYS[1], '*', 'k', 'M', 'r', ARGV[2], 'd', ARGV[3])
end
return redis.call('XLEN', KEYS[1])
"""


# The workload


def make_text(rng: random.Random) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < TEXT_BYTES:
        words.append("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))))
    return " ".join(words)[:TEXT_BYTES]


def make_calls(count: int, seed: int = 1) -> list[tuple[str, ...]]:
    """
    The keys and arguments of C{count} script calls, made up in advance so
    that making them up costs nothing during the measurements.
    """
    rng = random.Random(seed)
    now_ms = 1_700_000_000_000
    calls = []
    for n in range(count):
        room = f"#room{n % ROOMS}"
        args: list[str] = [f"bench:history:{room}", EVENTS_KEY, room]
        for _ in range(MESSAGES_PER_CALL):
            now_ms += rng.randint(1, 50)
            args += [str(now_ms), f"user{rng.randint(1, 99):02d}", make_text(rng)]
        calls.append(tuple(args))
    return calls


def event_fields(call: Sequence[str]) -> dict[str, str]:
    """The fields of the events entry that SCRIPT adds for C{call}."""
    lines = [f"{call[i + 1]} {call[i + 2]}" for i in range(3, len(call), 3)]
    return {"k": "M", "r": call[2], "d": "\n".join(lines)}


PREFILL_CALL = make_calls(1, seed=2)[0]


# The clients, each behind the same small interface


class Client(Protocol):
    name: str

    async def start(self, port: int) -> str:
        """Connect, load SCRIPT, and return its SHA1."""

    def execute(self, command: tuple[str, ...]) -> Awaitable[Any]: ...

    def xread(self, key: str, last_id: str) -> Awaitable[Any]: ...

    def sleep(self, seconds: float) -> Awaitable[object]: ...

    def gather(self, coroutines: list[Coroutine[Any, Any, None]]) -> Awaitable[object]: ...

    async def stop(self) -> None: ...

    def describe(self) -> str: ...


class OnTwisted:
    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def sleep(self, seconds: float) -> Awaitable[object]:
        from twisted.internet.task import deferLater

        return deferLater(self.reactor, seconds, lambda: None)

    def gather(self, coroutines: list[Coroutine[Any, Any, None]]) -> Awaitable[object]:
        from twisted.internet.defer import ensureDeferred, gatherResults

        return gatherResults([ensureDeferred(c) for c in coroutines], consumeErrors=True)


class RespClient(OnTwisted):
    name = "resp"

    async def start(self, port: int) -> str:
        from twisted.internet.defer import Deferred

        from chat.resp import RedisClient, parse_redis_url

        url = f"redis://127.0.0.1:{port}/0"
        self.client = RedisClient(self.reactor, parse_redis_url(url), scripts=[SCRIPT])
        connected: Deferred[None] = Deferred()
        self.client.on_connect.append(lambda: connected.called or connected.callback(None))
        self.client.startService()
        await connected
        # SCRIPT LOAD went first on the connection: whatever follows runs after it.
        return SCRIPT_SHA

    def execute(self, command: tuple[str, ...]) -> Awaitable[Any]:
        return self.client.execute(*command)

    def xread(self, key: str, last_id: str) -> Awaitable[Any]:
        return self.client.execute("XREAD", "COUNT", XREAD_COUNT, "STREAMS", key, last_id)

    async def stop(self) -> None:
        await self.client.stopService()

    def describe(self) -> str:
        return f"{type(self.reactor).__name__}"


class TxRedisClient(OnTwisted):
    name = "txredisapi"
    pure = False

    async def start(self, port: int) -> str:
        import txredisapi

        if self.pure:
            txredisapi.RedisFactory.protocol = txredisapi.BaseRedisProtocol
        # convertNumbers=False: by default any reply that looks like a number
        # becomes an int or a float, a message "42" included.
        self.connection = await txredisapi.Connection(
            "127.0.0.1", port, dbid=0, convertNumbers=False
        )
        sha: str = await self.connection.script_load(SCRIPT)
        return sha

    def execute(self, command: tuple[str, ...]) -> Awaitable[Any]:
        return self.connection.execute_command(*command)  # type: ignore[no-any-return]

    def xread(self, key: str, last_id: str) -> Awaitable[Any]:
        return self.connection.execute_command(  # type: ignore[no-any-return]
            "XREAD", "COUNT", XREAD_COUNT, "STREAMS", key, last_id
        )

    async def stop(self) -> None:
        await self.connection.disconnect()

    def describe(self) -> str:
        import txredisapi

        protocol = txredisapi.RedisFactory.protocol.__name__
        return f"{type(self.reactor).__name__}, {protocol}"


class PureTxRedisClient(TxRedisClient):
    name = "txredisapi-pure"
    pure = True


class RedisPyClient:
    name = "redis-py"

    async def start(self, port: int) -> str:
        import redis.asyncio

        self.redis = redis.asyncio.Redis(host="127.0.0.1", port=port, db=0, decode_responses=True)
        sha: str = await self.redis.script_load(SCRIPT)
        return sha

    def execute(self, command: tuple[str, ...]) -> Awaitable[Any]:
        return self.redis.execute_command(*command)

    def xread(self, key: str, last_id: str) -> Awaitable[Any]:
        return self.redis.xread({key: last_id}, count=XREAD_COUNT)

    def sleep(self, seconds: float) -> Awaitable[object]:
        return asyncio.sleep(seconds)

    def gather(self, coroutines: list[Coroutine[Any, Any, None]]) -> Awaitable[object]:
        return asyncio.gather(*coroutines)

    async def stop(self) -> None:
        pool = self.redis.connection_pool
        # Concurrent commands each take a connection of their own from the pool.
        self.connections = len(pool._available_connections) + len(pool._in_use_connections)
        await self.redis.aclose()

    def describe(self) -> str:
        import redis
        from redis.asyncio.connection import DefaultParser

        loop = type(asyncio.get_running_loop()).__name__
        connections = getattr(self, "connections", "?")
        return (
            f"redis {redis.__version__}, {DefaultParser.__name__}, {loop}, "
            f"{connections} connections in the pool"
        )


# The measurements, run in the child process


async def measure_throughput(
    client: Client, commands: list[tuple[str, ...]], duration: float
) -> dict[str, float]:
    done = 0
    stopping = False

    async def caller(start: int) -> None:
        nonlocal done
        i = start
        while not stopping:
            await client.execute(commands[i % len(commands)])
            done += 1
            i += 1

    callers = client.gather([caller(n * 7) for n in range(WINDOW)])
    await client.sleep(WARMUP)
    calls0, t0, cpu0 = done, time.perf_counter(), time.process_time()
    await client.sleep(duration)
    calls1, t1, cpu1 = done, time.perf_counter(), time.process_time()
    stopping = True
    await callers
    calls = calls1 - calls0
    return {"calls_per_s": calls / (t1 - t0), "cpu_us_per_call": (cpu1 - cpu0) / calls * 1e6}


async def measure_latency(
    client: Client, commands: list[tuple[str, ...]], duration: float
) -> dict[str, float]:
    samples: list[int] = []
    clock = time.perf_counter_ns
    cpu0 = time.process_time()
    deadline = clock() + int(duration * 1e9)
    i = 0
    while True:
        t = clock()
        await client.execute(commands[i % len(commands)])
        now = clock()
        samples.append(now - t)
        i += 1
        if now > deadline:
            break
    cpu = time.process_time() - cpu0
    percentiles = statistics.quantiles(samples, n=100)
    return {
        "p50_us": statistics.median(samples) / 1e3,
        "p99_us": percentiles[98] / 1e3,
        "cpu_us_per_call_seq": cpu / len(samples) * 1e6,
    }


def stream_entries(reply: Any, key: str) -> list[Any]:
    """
    The entries of an XREAD reply for one stream, checking its shape:
    C{[[key, [[id, [field, value, ...]], ...]]]}, or with redis-py
    C{[[key, [(id, {field: value}), ...]]]}.
    """
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3
        reply = [[k, v] for k, v in reply.items()]
    if len(reply) != 1 or reply[0][0] != key:
        raise AssertionError(f"XREAD reply for the wrong streams: {str(reply)[:200]}")
    entries: list[Any] = reply[0][1]
    return entries


def check_entry(entry: Any, expected: dict[str, str]) -> None:
    entry_id, fields = entry
    if not isinstance(fields, dict):
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    if not isinstance(entry_id, str) or fields != expected:
        raise AssertionError(f"XREAD entry misread: {str(entry)[:200]}")


async def measure_reader(client: Client, duration: float) -> dict[str, float]:
    expected = event_fields(PREFILL_CALL)
    entries = passes = in_pass = 0
    last_id = "0-0"
    t0, cpu0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < duration:
        batch = stream_entries(await client.xread(READ_KEY, last_id), READ_KEY)
        if not batch:
            if in_pass != PREFILL:
                raise AssertionError(f"read {in_pass} entries, not {PREFILL}")
            passes += 1
            in_pass = 0
            last_id = "0-0"
            continue
        check_entry(batch[0], expected)
        check_entry(batch[-1], expected)
        in_pass += len(batch)
        entries += len(batch)
        last_id = batch[-1][0]
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "xread_entries_per_s": entries / elapsed,
        "xread_cpu_us_per_entry": cpu / entries * 1e6,
        "xread_passes": passes + in_pass / PREFILL,
    }


async def run_workload(client: Client, port: int, duration: float) -> dict[str, Any]:
    sha = await client.start(port)
    if sha != SCRIPT_SHA:
        raise AssertionError(f"SCRIPT LOAD answered {sha!r}")
    commands = [("EVALSHA", sha, "2", *call) for call in make_calls(256)]
    first = await client.execute(commands[0])
    if not (isinstance(first, str) and first.partition("-")[2].isdigit()):
        raise AssertionError(f"EVALSHA answered {first!r}, not an entry ID")
    result: dict[str, Any] = {}
    result.update(await measure_reader(client, duration))
    result.update(await measure_throughput(client, commands, duration))
    result.update(await measure_latency(client, commands, duration * 0.6))
    await client.stop()
    result["describe"] = client.describe()
    return result


def child(name: str, port: int, duration: float) -> None:
    """Measure one client and print the result as a line of JSON."""
    if name == "redis-py":
        result = asyncio.run(run_workload(RedisPyClient(), port, duration))
    else:
        from twisted.internet import reactor
        from twisted.internet.defer import ensureDeferred

        clients = {"resp": RespClient, "txredisapi": TxRedisClient}
        clients["txredisapi-pure"] = PureTxRedisClient
        outcome: list[Any] = []

        def begin() -> None:
            d = ensureDeferred(run_workload(clients[name](reactor), port, duration))
            d.addBoth(outcome.append).addBoth(lambda _: reactor.stop())

        reactor.callWhenRunning(begin)
        reactor.run()
        if not outcome or not isinstance(outcome[0], dict):
            if outcome:
                outcome[0].printTraceback()
            raise SystemExit(1)
        result = outcome[0]
    print("RESULT", json.dumps(result), flush=True)


# The parent process: the Redis server, the runs and the table


class Redis:
    """A blocking connection to Redis, enough to set the runs up."""

    def __init__(self, port: int) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.reader = hiredis.Reader(encoding="utf-8")

    def call(self, *args: str | int) -> Any:
        self.socket.sendall(hiredis.pack_command(args))
        while (reply := self.reader.gets()) is False:
            data = self.socket.recv(1 << 16)
            if not data:
                raise ConnectionError("Redis closed the connection")
            self.reader.feed(data)
        if isinstance(reply, hiredis.ReplyError):
            raise reply
        return reply

    def close(self) -> None:
        self.socket.close()


@contextmanager
def redis_server(executable: str) -> Iterator[int]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="redis-bench-") as tmp:
        command = [executable, "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp]
        command += ["--save", "", "--appendonly", "no", "--logfile", f"{tmp}/redis.log"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    Redis(port).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        raise RuntimeError(f"redis-server did not start on {port}") from None
                    time.sleep(0.05)
            yield port
        finally:
            stop(process, timeout=10)


def reset(port: int) -> None:
    """Empty Redis, then fill the stream the reader test reads."""
    redis = Redis(port)
    try:
        redis.call("FLUSHALL")
        fields = event_fields(PREFILL_CALL)
        length = redis.call("EVAL", PREFILL_SCRIPT, 1, READ_KEY, PREFILL, fields["r"], fields["d"])
        assert length == PREFILL, length
    finally:
        redis.close()


def run_child(name: str, port: int, duration: float, warnings: set[str]) -> dict[str, Any] | None:
    command = [sys.executable, "-W", "default", "-m", "bench.redis_clients"]
    command += ["--child", name, "--port", str(port), "--duration", str(duration)]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120 + 5 * duration
    )
    for line in done.stderr.splitlines():
        if "Warning:" in line:
            warnings.add(f"{name}: {line.strip()}")
    results = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not results:
        print(f"{name} failed (exit {done.returncode}):\n{done.stderr}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(results[-1].removeprefix("RESULT "))
    return result


ROWS = [
    ("calls_per_s", "EVALSHA calls/s, 32 in flight", "{:,.0f}"),
    ("cpu_us_per_call", "client CPU us/call, 32 in flight", "{:.1f}"),
    ("p50_us", "latency p50 us, one call at a time", "{:.0f}"),
    ("p99_us", "latency p99 us, one call at a time", "{:.0f}"),
    ("cpu_us_per_call_seq", "client CPU us/call, one at a time", "{:.1f}"),
    ("xread_entries_per_s", "XREAD COUNT 1000 entries/s", "{:,.0f}"),
    ("xread_cpu_us_per_entry", "client CPU us/entry, XREAD", "{:.2f}"),
]


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    names = list(results)
    lines = [
        "| measure | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for key, label, form in ROWS:
        cells = []
        for name in names:
            values = [r[key] for r in results[name]]
            if not values:
                cells.append("failed")
                continue
            median = form.format(statistics.median(values))
            low, high = form.format(min(values)), form.format(max(values))
            cells.append(median if len(values) == 1 else f"{median} ({low}-{high})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def available(names: Sequence[str]) -> list[str]:
    modules = {"txredisapi": "txredisapi", "txredisapi-pure": "txredisapi", "redis-py": "redis"}
    found = []
    for name in names:
        module = modules.get(name)
        if module and importlib.util.find_spec(module) is None:
            print(f"{name}: {module} is not installed, skipped", file=sys.stderr)
            print(f"({name} skipped: `pip install {module}`)\n")
            continue
        found.append(name)
    return found


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.redis_clients", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions per client (3)")
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds per throughput/reader test (5)"
    )
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(DEFAULT_CLIENTS))
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    parser.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        try:
            child(args.child, args.port, args.duration)
        except Exception:
            traceback.print_exc()
            raise SystemExit(1) from None
        return

    names = available(args.clients)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    warnings: set[str] = set()
    described: dict[str, str] = {}
    started = time.monotonic()
    with redis_server(args.redis_server) as port:
        redis = Redis(port)
        version = redis.call("INFO", "server").split("redis_version:")[1].split()[0]
        redis.close()
        for rep in range(args.reps):
            for name in names:
                print(f"rep {rep + 1}/{args.reps}: {name}", file=sys.stderr, flush=True)
                reset(port)
                result = run_child(name, port, args.duration, warnings)
                if result is not None:
                    results[name].append(result)
                    described[name] = result["describe"]

    print(
        f"Redis clients on chatroom's workload: Python {platform.python_version()}, "
        f"redis-server {version}, --reps {args.reps} --duration {args.duration:g}; "
        f"median (min-max) of the repetitions.\n"
    )
    print(table(results))
    print()
    for name, description in described.items():
        print(f"- {name}: {description}")
    for warning in sorted(warnings):
        print(f"- warning from {warning}")
    print(f"\n({time.monotonic() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
