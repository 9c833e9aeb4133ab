"""
The server as an operator runs it: a separate twistd process, signals,
C{kill -9}, and the plugin as installed.
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from chat.lines import parse_line
from tests.conftest import ROOT, TWISTD, ServerProcess, SocketClient, chatroom_args


def test_sigterm_says_bye_and_exits_zero(chat_server: ServerProcess) -> None:
    client = SocketClient(chat_server)
    client.send("/register alice password1", "general", "before shutdown")
    client.until("MSG general")
    idle = SocketClient(chat_server)
    assert chat_server.stop() == 0
    # A restart: each is told when to come back, then BYE.
    for connection in (client, idle):
        assert connection.line().startswith("RECONNECT ")
        assert connection.line() == "BYE :server shutting down"
    with pytest.raises(EOFError):
        client.line()


def test_kill_9_loses_nothing_acknowledged(tmp_path: Path) -> None:
    chat_server = ServerProcess(tmp_path / "data", "--flood-rate", "0")
    chat_server.start()
    try:
        _kill_and_check(chat_server)
    finally:
        if chat_server.process is not None and chat_server.process.poll() is None:
            chat_server.kill()


def _kill_and_check(chat_server: ServerProcess) -> None:
    alice = SocketClient(chat_server)
    alice.send("/register alice password1")
    assert alice.line() == "OK register alice"
    alice.send("/create Vault")
    alice.until("END history Vault")
    others = [SocketClient(chat_server) for _ in range(5)]
    for i, other in enumerate(others):
        other.send(f"/register user{i} password{i}")
    for i, other in enumerate(others):
        assert other.line() == f"OK register user{i}"
    # The kill comes while messages are still arriving: whatever had been
    # echoed by then must survive it.
    alice.send(*(f"message {i}" for i in range(2000)))
    echoed = []
    for _ in range(1000):
        line = parse_line(alice.line())
        assert line.tag == "MSG"
        echoed.append(f"{line.args[1]} alice {line.text}")
    chat_server.kill()
    alice.close()

    chat_server.restart()
    stored = (chat_server.data / "rooms" / "Vault.log").read_text().splitlines()
    assert stored[: len(echoed)] == echoed
    for name, password in [("alice", "password1")] + [
        (f"user{i}", f"password{i}") for i in range(5)
    ]:
        again = SocketClient(chat_server)
        again.send(f"/login {name} {password}")
        assert again.line() == f"OK login {name}"
        again.close()
    again = SocketClient(chat_server)
    again.send("/login alice password1")
    again.until("END rooms")
    again.send("/join vault")
    history = [parse_line(line) for line in again.until("END history")[1:-1]]
    assert [f"{h.args[1]} alice {h.text}" for h in history] == stored[-50:]


def test_plugin_help_lists_the_options(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [
            *TWISTD,
            "chatroom",
            "--help",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for option in ("--port", "--data", "--auth", "--history", "--bcrypt-rounds"):
        assert option in out


def test_installed_plugin_is_found() -> None:
    """
    After the README's install command, twistd (which does not look in the
    current directory) finds the plugin from anywhere.
    """
    twistd = shutil.which("twistd", path=os.path.dirname(sys.executable))
    assert twistd, "twistd is not installed next to this Python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [twistd, "--help"], cwd="/", env=env, capture_output=True, text=True, timeout=60
    ).stdout
    assert "chatroom" in out


def test_wheel_holds_the_plugin(tmp_path: Path) -> None:
    # Built from a clean copy: pip builds in the tree, and a build/ left
    # there by an earlier build would put in the wheel what setup.cfg
    # no longer does.
    source = tmp_path / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".*", "build", "*.egg-info", "__pycache__", "data", "target", "loadgen"
        ),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("chatroom-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "twisted/plugins/chatroom.py" in names
    assert "chat/protocol.py" in names
    # The Redis scripts are package data, read with importlib.resources.
    lua = sorted(p.name for p in (ROOT / "chat" / "storage" / "redis" / "lua").glob("*.lua"))
    assert lua
    assert [n for n in lua if f"chat/storage/redis/lua/{n}" not in names] == []
    assert "chat/wire/protocol.py" in names
    assert not any(
        n.startswith(("tests/", "data/", "twisted/__init__", "twisted/plugins/__init__"))
        for n in names
    )


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _slow_consumer_run(tmp_path: Path, *options: str) -> tuple[int, list[str], ServerProcess]:
    """
    20,000 messages of about 1 kB flow into a room where one member never
    reads.  Returns the server's RSS growth in KiB, the texts the reading
    member got, and the server.
    """
    server = ServerProcess(tmp_path / "data", "--flood-rate", "0", *options)
    server.start()
    try:
        # The slow member's kernel buffers are kept small, so that what it
        # does not read piles up in the server, not in the kernel.
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(10)
        slow.connect((server.host, server.port))
        slow.sendall(b"/register slow password1\n/join general\n")
        sender = SocketClient(server)
        sender.send("/register sender password1", "/join general")
        sender.until("END history")
        reader = SocketClient(server)
        reader.send("/register reader password1", "/join general")
        reader.until("END history")
        assert process_pid(server)
        before = _rss_kib(process_pid(server))
        received: list[str] = []

        def read_all() -> None:
            while len(received) < 20_000:
                line = parse_line(reader.line())
                if line.tag == "MSG":
                    received.append(line.text or "")

        thread = threading.Thread(target=read_all, daemon=True)
        thread.start()
        padding = "x" * 1000
        for batch in range(200):
            sender.send(*(f"{batch * 100 + i} {padding}" for i in range(100)))
            for _ in range(100):
                while not sender.line().startswith("MSG "):
                    pass
        thread.join(60)
        after = _rss_kib(process_pid(server))
        slow.close()
        return after - before, received, server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()


def process_pid(server: ServerProcess) -> int:
    assert server.process is not None
    return server.process.pid


def test_a_member_that_stops_reading_is_dropped(tmp_path: Path) -> None:
    growth, received, server = _slow_consumer_run(tmp_path)
    assert [int(text.split()[0]) for text in received] == list(range(20_000))
    assert any("Dropping" in line and "slow" in line for line in server.output)
    # Without the cap the server holds the ~20 MB the member did not read.
    assert growth < 8 * 1024, f"server grew by {growth} KiB"


def _twistd(cwd: Path, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """
    Run twistd (from this Python, with the plugin on the path) to its end.
    """
    return subprocess.run(
        [*TWISTD, *argv],
        cwd=cwd,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_sigint_says_bye_and_exits_zero(tmp_path: Path) -> None:
    """
    Ctrl-C in the terminal is a normal stop, as SIGTERM is.
    """
    server = ServerProcess(tmp_path / "data")
    # A child inherits an ignored SIGINT (a test run started with "&" in a
    # script); a terminal's Ctrl-C reaches a server that did not ignore it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        server.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        client = SocketClient(server)
        client.send("/register alice password1", "general", "before Ctrl-C")
        client.until("MSG general")
        assert server.process is not None
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(20) == 0
        assert client.line().startswith("RECONNECT ")
        assert client.line() == "BYE :server shutting down"
        stored = (server.data / "rooms" / "general.log").read_text()
        assert stored.endswith(" alice before Ctrl-C\n")
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()


def _in_use(data: Path, pid: int) -> str:
    return (
        f"chatroom: {data} is in use by another chatroom server (pid {pid}); "
        "stop it or use another --data\n"
    )


def test_a_second_server_on_the_same_data_is_refused(chat_server: ServerProcess) -> None:
    first = SocketClient(chat_server)
    first.send("/register erin password1")
    assert first.line() == "OK register erin"
    second = _twistd(chat_server.data.parent, *chatroom_args(chat_server.data))
    assert second.returncode == 1
    assert (second.stdout, second.stderr) == (
        "",
        _in_use(chat_server.data, process_pid(chat_server)),
    )
    # The first one never noticed.
    again = SocketClient(chat_server)
    again.send("/login erin password1")
    assert again.line() == "OK login erin"


def test_a_server_killed_with_kill_9_leaves_no_lock(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    server.start()
    killed = process_pid(server)
    server.kill()
    lock_file = server.data / "chatroom.lock"
    assert lock_file.read_text() == f"{killed}\n"
    server.restart()
    try:
        assert lock_file.read_text() == f"{process_pid(server)}\n"
        SocketClient(server).close()
    finally:
        server.kill()


def _wait_for_exit(pid: int, timeout: float) -> bool:
    """
    Wait for a process that is not our child (a daemon) to end.
    """
    fd = os.pidfd_open(pid)
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def test_the_lock_survives_twistd_daemonizing(tmp_path: Path) -> None:
    """
    Without -n, twistd forks twice after makeService has taken the lock;
    the daemon must still hold it, under its own PID.
    """
    data = tmp_path / "data"
    started = _twistd(
        tmp_path,
        "--pidfile",
        str(tmp_path / "chat.pid"),
        "-l",
        str(tmp_path / "chat.log"),
        "chatroom",
        "--port",
        "tcp:0:interface=127.0.0.1",
        "--data",
        str(data),
    )
    # twistd's foreground process returns once the daemon has started.
    assert started.returncode == 0, started
    daemon = int((tmp_path / "chat.pid").read_text())
    try:
        assert started.stderr == ""
        assert (data / "chatroom.lock").read_text() == f"{daemon}\n"
        second = _twistd(
            tmp_path, "-n", "--pidfile=", "chatroom", "--port", "tcp:0", "--data", str(data)
        )
        assert (second.returncode, second.stderr) == (1, _in_use(data, daemon))
    finally:
        os.kill(daemon, signal.SIGTERM)
        assert _wait_for_exit(daemon, 20)


def test_version_is_chatrooms(tmp_path: Path) -> None:
    from chat import __version__

    result = _twistd(tmp_path, "chatroom", "--version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"chatroom {__version__} (protocol 1, Twisted ")
    assert result.stdout.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--max-sendq", "abc"], "--max-sendq abc: not a whole number"),
        (["--port", "bogus:1"], "--port bogus:1: not an endpoint chatroom can listen on; e.g. "),
        (["--port", "tcp:abc"], "--port tcp:abc: not an endpoint chatroom can listen on; e.g. "),
        (
            ["--store", "redis://h:notaport"],
            "--store redis://h:notaport: not a Redis address; e.g. ",
        ),
        (["--auth", "nosuch:x"], "--auth nosuch:x: "),
        (["--nope"], "option --nope not recognized"),
    ],
)
def test_a_bad_value_is_one_line(tmp_path: Path, argv: list[str], error: str) -> None:
    result = _twistd(tmp_path, "-n", "chatroom", *argv)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"twistd chatroom: {error}"), result.stderr
    assert result.stderr.endswith("; see twistd chatroom --help\n")
    assert result.stderr.count("\n") == 1
    # Nothing of Python's own wording reaches the user.
    assert "literal" not in result.stderr and "cast" not in result.stderr
    if argv[0] == "--auth":
        assert "--help-auth lists the checkers" in result.stderr
    assert not (tmp_path / "data").exists()


def _readme_tls() -> tuple[str, str, list[str]]:
    """
    The README's TLS recipe: the openssl command, the server's --port and
    the client's arguments.
    """
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## TLS\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    (openssl,) = [line for line in block if line.startswith("openssl req ")]
    (server,) = [line for line in block if "twistd" in line]
    (client,) = [line for line in block if "chatroom-client" in line]
    port = server.split("--port ", 1)[1].split()[0]
    return openssl, port, shlex.split(client)[1:]


def test_the_readmes_tls_recipe_works(tmp_path: Path) -> None:
    openssl, port, client_args = _readme_tls()
    subprocess.run(shlex.split(openssl), cwd=tmp_path, check=True, capture_output=True, timeout=60)
    assert port.startswith("ssl:5001:")
    server = ServerProcess(tmp_path / "data", "--port", port.replace("ssl:5001:", "ssl:0:", 1))
    server.start()
    try:
        line = server.wait_for(r"ChatFactory \(TLS\) starting on \d+")
        tls_port = line.rsplit(" ", 1)[1]
        assert client_args[client_args.index("--port") + 1] == "5001"
        client_args[client_args.index("--port") + 1] = tls_port
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        for host in ("localhost", "127.0.0.1"):
            client_args[client_args.index("--host") + 1] = host
            result = subprocess.run(
                [sys.executable, "-m", "chat.client", *client_args, "--user", f"u{host[0]}"],
                input="register\npassword1\npassword1\n",
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert result.returncode == 0, result
            assert f"registered and logged in as u{host[0]}" in result.stdout
            # And a client that is not ours, checking the host name.
            context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
            with socket.create_connection((host, int(tls_port)), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname=host) as tls:
                    assert tls.makefile("rb").readline().startswith(b"HELLO chatroom 1 ")
    finally:
        server.kill()
