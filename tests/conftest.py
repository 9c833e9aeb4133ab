"""
Fixtures that run the real server: in this process on the test reactor
(C{server}), or as a separate process (C{chat_server}) for what only a
process can show: signals, C{kill -9}, the installed plugin, the client.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from tests.redis_server import RedisProcess, require_redis

ROOT = Path(__file__).resolve().parent.parent
#: twistd from this Python, found without relying on a console script.
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def chatroom_args(data: Path, *options: str) -> list[str]:
    """
    What follows L{TWISTD} to run chatroom in the foreground, logging to
    standard output, on a free port of loopback, with its files in C{data}.
    """
    return [
        "-n",
        "--pidfile=",
        "-l",
        "-",
        "chatroom",
        "--port",
        "tcp:0:interface=127.0.0.1",
        "--data",
        str(data),
        *options,
    ]


_LISTENING = re.compile(r"ChatFactory starting on (\d+)")


class ServerProcess:
    """
    C{twistd -n chatroom} in a child process, on a free loopback port.

    @ivar output: Every line the server has logged so far.
    """

    host = "127.0.0.1"

    def __init__(self, data: Path, *options: str) -> None:
        self.data = data
        self.options = options
        self.output: list[str] = []
        self.port = 0
        self.process: subprocess.Popen[str] | None = None
        self._logged = threading.Condition()

    def start(self, timeout: float = 30, ready: bool = True) -> None:
        """
        @param ready: Wait until the rooms are loaded (before that, every
            line is answered C{ERR unavailable}).
        """
        since = len(self.output)
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [*TWISTD, *chatroom_args(self.data, "--bcrypt-rounds", "4", *self.options)],
            cwd=self.data.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ports: queue.Queue[int] = queue.Queue()
        threading.Thread(target=self._drain, args=(self.process, ports), daemon=True).start()
        try:
            self.port = ports.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise RuntimeError("server did not start:\n" + "\n".join(self.output)) from None
        # The port is logged before the reactor runs (and installs its signal
        # handlers); a HELLO proves the reactor is running.
        with socket.create_connection((self.host, self.port), timeout=timeout) as probe:
            assert probe.makefile("rb").readline().startswith(b"HELLO ")
        if ready:
            self.wait_for(r"Loaded \d+ rooms", since, timeout)

    def _drain(self, process: subprocess.Popen[str], ports: queue.Queue[int]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._logged:
                self.output.append(line.rstrip("\n"))
                self._logged.notify_all()
            match = _LISTENING.search(line)
            if match:
                ports.put(int(match.group(1)))

    def wait_for(self, pattern: str, since: int = 0, timeout: float = 30) -> str:
        """
        Wait until the server logs a line matching C{pattern} (a regular
        expression), looking at lines from number C{since} on.

        @return: The line.
        """
        wanted = re.compile(pattern)

        def found() -> str | None:
            return next((line for line in self.output[since:] if wanted.search(line)), None)

        with self._logged:
            if self._logged.wait_for(lambda: found() is not None, timeout):
                return found()  # type: ignore[return-value]
        raise AssertionError(f"the server never logged {pattern!r}:\n" + "\n".join(self.output))

    def stop(self, timeout: float = 20) -> int:
        """
        SIGTERM, as an operator would; returns the exit status.
        """
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """
        SIGKILL: no goodbyes, no flushing.
        """
        assert self.process is not None
        self.process.kill()
        self.process.wait(20)

    def restart(self) -> None:
        self.start()


class SocketClient:
    """
    A blocking line client for a server in another process.
    """

    def __init__(self, server: ServerProcess) -> None:
        self.sock = socket.create_connection((server.host, server.port), timeout=10)
        self.file = self.sock.makefile("rb")
        assert self.line().startswith("HELLO ")

    def send(self, *lines: str) -> None:
        self.sock.sendall(b"".join(line.encode() + b"\n" for line in lines))

    def line(self) -> str:
        raw = self.file.readline()
        if not raw:
            raise EOFError("server closed the connection")
        return raw.decode().rstrip("\n")

    def until(self, prefix: str) -> list[str]:
        lines = []
        while True:
            lines.append(self.line())
            if lines[-1].startswith(prefix):
                return lines

    def close(self) -> None:
        self.file.close()
        self.sock.close()


@pytest.fixture
def chat_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path / "data")
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()


@pytest_twisted.async_yield_fixture
async def server(tmp_path: Path) -> AsyncIterator[Any]:
    """
    The whole server in this process (L{chat.tap.makeService}) on a port
    picked by the kernel.
    """
    from tests.e2e import RunningServer

    running = RunningServer(tmp_path / "data")
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """
    A private redis-server (see L{tests.redis_server}); skips the test
    where there is none.
    """
    require_redis()
    redis = RedisProcess(tmp_path / "redis")
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Run every test in its own directory, so that trial-style C{mktemp()}
    (relative to the working directory) and anything a test writes by
    accident land in pytest's temporary tree, not in the checkout.
    """
    monkeypatch.chdir(tmp_path)
