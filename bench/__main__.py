"""
Benchmark chatroom side by side with the C IRC server ngircd.

    python -m bench                      # every scenario, chatroom and ngircd, 3 repetitions
    python -m bench --servers chatroom --scenarios fanout_1x100 --reps 1
    python -m bench --smoke              # tiny sizes, chatroom only: does the harness work?
    python -m bench --servers chatroom,ngircd --scenarios fanout_1x100 dm_50 --reps 1

Scenarios: fan-out in rooms (fanout_*), latency at a fixed rate (latency_*),
memory per idle connection, logins (connect_c8, storm) and private messages
between 50 pairs of users (dm_50), whose messages/s the last table puts next
to fan-out's.  Every measurement gets a freshly started server; the load comes from the
shared load generator in bench/loadgen (its native engine, which needs
cargo, unless --engine python).  Results are appended as JSON lines to a
file in a new temporary directory, then printed as tables (medians, with
min-max) by bench/loadgen/report.py.  ngircd is used when it is installed
(`apt-get install ngircd`); bench/loadgen/peers.sh installs more peers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOADGEN = HERE / "loadgen" / "loadgen.py"
REPORT = HERE / "loadgen" / "report.py"

SCENARIOS = {
    "fanout_1x100": "fanout --rooms 1 --members 100 --senders 5 --window 8 --warmup 3 "
    "--duration 10",
    "fanout_10x50": "fanout --rooms 10 --members 50 --senders 5 --window 8 --warmup 3 "
    "--duration 10",
    "latency_2000": "latency --rooms 1 --members 100 --senders 10 --rate 2000 --warmup 2 "
    "--duration 10 --drain 5",
    "latency_500": "latency --rooms 1 --members 100 --senders 10 --rate 500 --warmup 2 "
    "--duration 10 --drain 5",
    "memory_10000": "memory --conns 10000 --rooms 100 --settle 3 --setup-timeout 150 --quickack",
    "connect_c8": "connect --concurrency 8 --duration 10 --count 50000",
    "dm_50": "dm --pairs 50 --window 8 --warmup 3 --duration 10",
}
SMOKE = {
    "fanout_1x100": "fanout --rooms 1 --members 10 --senders 2 --window 2 --warmup 0.5 "
    "--duration 1",
    "latency_500": "latency --rooms 1 --members 10 --senders 2 --rate 50 --warmup 0.5 "
    "--duration 1 --drain 1",
    "memory_10000": "memory --conns 50 --rooms 2 --settle 0.5",
    "connect_c8": "connect --concurrency 2 --duration 1 --count 50",
    "dm_50": "dm --pairs 5 --window 2 --warmup 0.5 --duration 1",
}
#: The login storm: a room chatting at 500 messages/s, alone and then while
#: 200 logins at bcrypt cost 12 are in flight.
STORM_CHAT = (
    "latency --rooms 1 --members 100 --senders 10 --rate 500 --warmup 2 --duration 10 --drain 5"
)
STORM_LOGINS = "connect --concurrency 200 --duration 16 --count 100000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def stop(process: subprocess.Popen[Any], timeout: float = 20) -> None:
    """
    SIGTERM, as an operator stops a server; SIGKILL if it does not exit
    within C{timeout} seconds.
    """
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def chatroom(work: Path, *options: str, root: Path = ROOT) -> Iterator[tuple[int, int, Path]]:
    """
    A fresh chatroom server: yields its port, PID and data directory.
    Flood control and the per-address limits are off (one machine plays
    thousands of users), and bcrypt runs at its lowest cost unless
    C{options} say otherwise (setting up 10,000 accounts at cost 12 would
    take half an hour); history stays on, as in production.
    """
    port = free_port()
    data = Path(tempfile.mkdtemp(dir=work, prefix="chatroom-"))
    command = [
        sys.executable,
        "-c",
        "from twisted.scripts.twistd import run; run()",
        "-n",
        "--pidfile=",
        "-l",
        str(data / "server.log"),
        "chatroom",
        "--port",
        f"tcp:{port}:interface=127.0.0.1:backlog=1024",
        "--data",
        str(data),
        "--flood-rate",
        "0",
        "--max-connections-per-ip",
        "0",
        "--login-timeout",
        "0",
        "--max-pending-logins",
        "0",
        "--bcrypt-rounds",
        "4",
        *options,
    ]
    env = dict(os.environ, PYTHONPATH=str(root))
    process = subprocess.Popen(command, env=env, preexec_fn=_raise_fd_limit)
    try:
        wait_port(port)
        yield port, process.pid, data
    finally:
        stop(process)


@contextmanager
def ngircd(work: Path) -> Iterator[tuple[int, int, Path]]:
    """
    A fresh ngircd, configured as in bench/loadgen/peers.sh.
    """
    port = free_port()
    directory = Path(tempfile.mkdtemp(dir=work, prefix="ngircd-"))
    (directory / "conf.d").mkdir()
    (directory / "ngircd.conf").write_text(
        f"""[Global]
\tName = bench.localhost
\tInfo = ngircd benchmark instance
\tAdminInfo1 = bench
\tAdminInfo2 = bench
\tAdminEMail = bench@localhost
\tListen = 127.0.0.1
\tPorts = {port}
\tMotdPhrase = "bench"
\tPidFile = {directory}/ngircd.pid
[Limits]
\tMaxConnections = 0
\tMaxConnectionsIP = 0
\tMaxJoins = 0
\tMaxNickLength = 16
\tMaxPenaltyTime = 0
\tPingTimeout = 600
\tPongTimeout = 600
[Options]
\tIncludeDir = {directory}/conf.d
\tDNS = no
\tIdent = no
\tPAM = no
"""
    )
    log = open(directory / "log", "wb")
    process = subprocess.Popen(
        ["ngircd", "-n", "-f", str(directory / "ngircd.conf")],
        stdout=log,
        stderr=log,
        preexec_fn=_raise_fd_limit,
    )
    try:
        wait_port(port)
        time.sleep(0.5)
        yield port, process.pid, directory
    finally:
        stop(process)
        log.close()


def _raise_fd_limit() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 20000), hard))


SERVERS = {"chatroom": chatroom, "ngircd": ngircd}
PROTO = {"chatroom": "chatroom", "ngircd": "irc"}
SETUP_CONCURRENCY = {"chatroom": 50, "ngircd": 8}


def loadgen(
    server: str, port: int, pid: int, args: str, label: str, results: Path, engine: str
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        str(LOADGEN),
        *args.split(),
        "--engine",
        engine,
        "--port",
        str(port),
        "--proto",
        PROTO[server],
        "--server-pid",
        str(pid),
        "--label",
        label,
        "--json",
        str(results),
        "--max-time",
        "360",
    ]
    if PROTO[server] == "chatroom":
        command += ["--password", "password1"]
    if not args.startswith("connect"):
        command += ["--concurrency", str(SETUP_CONCURRENCY[server])]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def run(args: argparse.Namespace) -> Path:
    work = Path(tempfile.mkdtemp(prefix="chatroom-bench-"))
    results = work / "results.jsonl"
    scenarios = SMOKE if args.smoke else SCENARIOS
    chosen = args.scenarios or list(scenarios) + ([] if args.smoke else ["storm"])
    wanted = [s for arg in args.servers for s in arg.split(",") if s]
    unknown = sorted(set(wanted) - set(SERVERS))
    if unknown:
        raise SystemExit(f"unknown servers: {', '.join(unknown)} (known: {', '.join(SERVERS)})")
    servers = [s for s in wanted if s != "ngircd" or shutil.which("ngircd")]
    if len(servers) < len(wanted):
        print("ngircd is not installed: measuring chatroom alone", file=sys.stderr)
    print(f"results: {results}", file=sys.stderr)
    for scenario in chosen:
        for rep in range(1, args.reps + 1):
            for server in servers:
                if scenario == "storm":
                    if server == "chatroom":
                        storm(work, results, rep, args.engine)
                    continue
                with SERVERS[server](work) as (port, pid, data):
                    label = f"{server}:{scenario}:{rep}"
                    print(label, file=sys.stderr)
                    loadgen(
                        server, port, pid, scenarios[scenario], label, results, args.engine
                    ).wait()
                    if PROTO[server] == "chatroom":
                        if scenarios[scenario].startswith("dm "):
                            check_direct(data, results, label)
                        else:
                            check_history(data, results, label)
    subprocess.run([sys.executable, str(REPORT), str(results)], check=False)
    return results


def storm(work: Path, results: Path, rep: int, engine: str) -> None:
    """
    Chat latency at 500 messages/s, then the same while 200 clients log in
    over and over at bcrypt cost 12.  The storm starts once the chat's
    members are logged in (their own logins would otherwise queue behind
    it), and uses other names.
    """
    with chatroom(work, "--bcrypt-rounds", "12") as (port, pid, _):
        label = f"chatroom:storm_quiet:{rep}"
        print(label, file=sys.stderr)
        loadgen("chatroom", port, pid, STORM_CHAT, label, results, engine).wait()
    with chatroom(work, "--bcrypt-rounds", "12") as (port, pid, data):
        label = f"chatroom:storm_logins:{rep}"
        print(label, file=sys.stderr)
        chat = loadgen("chatroom", port, pid, STORM_CHAT, label, results, engine)
        log = data / "server.log"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and chat.poll() is None:
            if log.exists() and log.read_text().count(" logged in (") >= 100:
                break
            time.sleep(0.2)
        logins = loadgen(
            "chatroom",
            port,
            pid,
            STORM_LOGINS + " --name-prefix storm",
            f"chatroom:storm_load:{rep}",
            results,
            engine,
        )
        chat.wait()
        logins.wait()


def check_history(data: Path, results: Path, label: str) -> None:
    """
    With history on, every message delivered is in its room's file: count
    the lines against what the load generator saw acknowledged.
    """
    lines = sum(len(path.read_bytes().splitlines()) for path in (data / "rooms").glob("*.log"))
    last = json.loads(results.read_text().splitlines()[-1])
    acked = last.get("msgs_per_s", 0) * last.get("wall_s", 0)
    if acked:
        verdict = "ok" if lines >= acked * 0.999 else "MISSING"
        print(
            f"  history: {lines} lines on disk, >= {acked:.0f} acknowledged: {verdict}",
            file=sys.stderr,
        )


def check_direct(data: Path, results: Path, label: str) -> None:
    """
    Every private message a recipient received is on disk: count the lines
    of the conversations' files against what the recipients saw.  Each
    message is in both parties' copies, so each counts at least once.  A
    run that received nothing, lost, misrouted or missed an own copy fails
    the check too.
    """
    lines = sum(len(path.read_bytes().splitlines()) for path in (data / "dms").rglob("*.log"))
    last = json.loads(results.read_text().splitlines()[-1])
    if last.get("label") != label:
        last = {}
    received = last.get("received", 0)
    faults = {key: last.get(key) for key in ("copies_lost", "own_copies_missing", "misrouted")}
    good = received > 0 and lines >= received and not any(faults.values())
    print(
        f"  private messages: {lines} lines on disk, >= {received} received, "
        f"{faults['copies_lost']} lost, {faults['own_copies_missing']} own copies missing, "
        f"{faults['misrouted']} misrouted: {'ok' if good else 'MISSING'}",
        file=sys.stderr,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--servers",
        nargs="+",
        default=["chatroom", "ngircd"],
        help="chatroom, ngircd (separated by spaces or commas)",
    )
    parser.add_argument("--scenarios", nargs="+", choices=[*SCENARIOS, "storm"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--engine", choices=["native", "python"], default="native")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the harness")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="also measure chatroom as another checkout has it (git worktree add --detach DIR"
        " REV), as the server chatroom-base, interleaved with the others: a change's cost,"
        " side by side in one run",
    )
    args = parser.parse_args()
    if args.baseline is not None:
        root = args.baseline.resolve()
        SERVERS["chatroom-base"] = lambda work, *options: chatroom(work, *options, root=root)
        PROTO["chatroom-base"] = "chatroom"
        SETUP_CONCURRENCY["chatroom-base"] = SETUP_CONCURRENCY["chatroom"]
        args.servers = [*args.servers, "chatroom-base"]
    if args.smoke:
        args.servers = ["chatroom"]
        args.reps = 1
    run(args)


if __name__ == "__main__":
    main()
