"""
What the client's tests share: a client wired to fake standard I/O and
a fake server (L{Harness}), and the real client in a pipe or on a
pseudo-terminal.
"""

from __future__ import annotations

import io
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pexpect  # type: ignore[import-untyped]
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from chat.client import (
    ChatClient,
    ConsoleProtocol,
    Outcome,
    Renderer,
    Screen,
    ServerProtocol,
    Style,
)
from chat.lines import format_timestamp, parse_timestamp

ROOT = Path(__file__).resolve().parent.parent.parent
TIMEOUT = 10

# 2026-11-25T04:50:05.123Z, the example stamp of the protocol contract.
NOW = parse_timestamp("2026-11-25T04:50:05.123Z")
STAMP = format_timestamp(NOW)


class Harness:
    """
    One client wired to fake standard I/O and a fake server connection.

    With C{reconnect}, the client may connect again: each attempt waits in
    L{attempts} until the test L{accept}s or L{refuse}s it; the jitter is
    always C{jitter}.
    """

    def __init__(
        self,
        *,
        interactive: bool = False,
        user: str | None = None,
        colour: bool = False,
        reconnect: bool = False,
        jitter: float = 0.0,
    ) -> None:
        self.attempts: list[Deferred[Any]] = []
        self.clock = Clock()
        self.clock.advance(NOW)
        self.screen = Screen(interactive)
        self.renderer = Renderer(Style(colour), self.clock.seconds)
        self.client = ChatClient(
            self.screen,
            self.renderer,
            self.clock,
            interactive=interactive,
            user=user,
            address="chat.test:5000",
            connect=self._connect if reconnect else None,
            jitter=lambda: jitter,
        )
        self.console = ConsoleProtocol(self.client, self.screen, interactive)
        self.stdout = StringTransport()
        self.console.makeConnection(self.stdout)
        self.server = ServerProtocol(self.client)
        self.wire = StringTransport()
        self.server.makeConnection(self.wire)
        self.outcomes: list[Outcome] = []
        self.client.finished.addCallback(self.outcomes.append)

    def _connect(self) -> Deferred[Any]:
        attempt: Deferred[Any] = Deferred()
        self.attempts.append(attempt)
        return attempt

    def accept(self) -> None:
        """
        The first waiting attempt connects, on a new fake connection.
        """
        attempt = self.attempts.pop(0)
        self.server = ServerProtocol(self.client)
        self.wire = StringTransport()
        self.server.makeConnection(self.wire)
        attempt.callback(self.server)

    def refuse(self, reason: Exception) -> None:
        """
        The first waiting attempt fails.
        """
        self.attempts.pop(0).errback(Failure(reason))

    def type(self, text: str) -> None:
        self.console.dataReceived(text.encode("utf-8"))

    def hear(self, *lines: str) -> None:
        for line in lines:
            self.server.dataReceived(line.encode("utf-8") + b"\n")

    def sent(self) -> list[str]:
        data: str = self.wire.value().decode("utf-8")
        self.wire.clear()
        return data.splitlines()

    def output(self) -> str:
        data: str = self.stdout.value().decode("utf-8")
        self.stdout.clear()
        return data

    def lines(self) -> list[str]:
        return self.output().splitlines()

    def shown(self) -> list[str]:
        """
        The lines printed above the input line on a terminal (without the
        redrawn input lines in between).
        """
        *printed, _ = self.output().split("\r\n")
        return [re.split(r"\x1b\[[KJ]", line)[-1] for line in printed]

    def logged_in(self, name: str = "alice") -> None:
        """
        Through the login questions, as a script answers them.
        """
        self.hear("HELLO chatroom 1 :Welcome")
        self.type(f"login\n{name}\npassword1\n")
        assert self.sent() == [f"/login {name} password1"]
        self.hear(f"OK login {name}", "ROOM general 1", "END rooms")
        self.output()

    def lose(self, reason: Exception) -> None:
        self.server.connectionLost(Failure(reason))

    def goodbye(self) -> None:
        """
        The server says BYE and closes, as it does after C{/quit}.
        """
        self.hear("BYE :Goodbye")
        self.lose(ConnectionDone())


# Keys as xterm and tmux send them.
UP, DOWN, LEFT, RIGHT = "\x1b[A", "\x1b[B", "\x1b[D", "\x1b[C"
HOME, END, DELETE = "\x1b[H", "\x1b[F", "\x1b[3~"


def in_room(*, rooms: tuple[str, ...] = ("general",)) -> Harness:
    h = Harness(interactive=True)
    h.hear("HELLO chatroom 1 :Welcome")
    h.type("login\ralice\rpassword1\r")
    h.sent()
    h.hear("OK login alice", *(f"ROOM {room} 1" for room in rooms), "END rooms")
    h.hear("OK join general", "END history general")
    h.output()
    return h


def assert_editing(h: Harness, *steps: tuple[str, str]) -> None:
    """
    Type each step's keys, then check the input line.
    """
    for keys, line in steps:
        h.type(keys)
        assert (keys, h.screen.text) == (keys, line)


def client_command(port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "chat.client", "--port", str(port), *args]


def client_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    env.pop("NO_COLOR", None)
    return env | extra


class PipeClient:
    """
    C{python -m chat.client} with pipes for standard I/O; every read waits
    for an expected line, with a timeout.
    """

    def __init__(self, port: int, *args: str) -> None:
        self.process = subprocess.Popen(
            client_command(port, *args),
            cwd=ROOT,
            env=client_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.stderr = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def send(self, *lines: str) -> None:
        assert self.process.stdin is not None
        for line in lines:
            self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(self, pattern: str) -> str:
        """
        Read lines until one matches C{pattern} (a regular expression).
        """
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {pattern!r} in {self.seen}") from None
            if line is None:
                raise AssertionError(f"output ended without {pattern!r}: {self.seen}")
            self.seen.append(line)
            if re.search(pattern, line):
                return line

    def finish(self) -> int:
        """
        Close standard input and wait for the exit status.
        """
        assert self.process.stdin is not None
        if not self.process.stdin.closed:
            self.process.stdin.close()
        return self.wait()

    def wait(self) -> int:
        try:
            code = self.process.wait(TIMEOUT)
        finally:
            self.process.kill()
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()
        self.process.stderr.close()
        assert self.process.stdout is not None
        while (line := self.lines.get(timeout=TIMEOUT)) is not None:
            self.seen.append(line)
        self.process.stdout.close()
        return code


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def spawn_terminal(port: int, *args: str) -> tuple[Any, io.StringIO]:
    """
    The real client on a pseudo-terminal, without colours; everything it
    writes is kept in the returned log.
    """
    log = io.StringIO()
    child = pexpect.spawn(
        sys.executable,
        client_command(port, *args)[1:],
        cwd=str(ROOT),
        env=client_env(NO_COLOR="1"),
        encoding="utf-8",
        timeout=TIMEOUT,
        dimensions=(24, 200),
    )
    child.logfile_read = log
    return child, log


def dialog(child: Any, *steps: tuple[str, str | None]) -> None:
    """
    Wait for each text on the terminal, then type the answer and Enter
    (L{None}: only wait).
    """
    for shown, answer in steps:
        child.expect_exact(shown)
        if answer is not None:
            child.sendline(answer)


def keys(child: Any, *steps: tuple[str, str]) -> None:
    """
    Type each run of keys as it is (no Enter added), then wait for what it
    shows on the terminal.
    """
    for typed, shown in steps:
        child.send(typed)
        child.expect_exact(shown)
