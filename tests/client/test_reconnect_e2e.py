"""
The real client through a server restart, on a pseudo-terminal and through
a pipe, against a scripted server on a real socket that says what the
restarting server says (C{RECONNECT}, then C{BYE}), closes, and takes the
client back.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pexpect  # type: ignore[import-untyped]
import pytest

from chat.commands import COMMANDS
from chat.lines import format_timestamp
from tests.client.helpers import (
    NOW,
    STAMP,
    TIMEOUT,
    PipeClient,
    dialog,
    free_port,
    spawn_terminal,
)
from tests.conftest import ServerProcess


class RestartingServer:
    """
    A chatroom server that answers the client's lines from a script and,
    on L{restart}, says C{RECONNECT 1} and C{BYE}, closes the connection
    and accepts the next one.

    @ivar received: The lines the client sent, one list per connection.
    """

    def __init__(self) -> None:
        self.received: list[list[str]] = []
        self.tokens = 0
        self._connection: socket.socket | None = None
        self._lock = threading.Lock()
        #: Whether the first token is refused (revoked) after the restart.
        self.revoked = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(TIMEOUT)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                with self._lock:
                    self._connection = connection
                    self.received.append([])
                try:
                    self._converse(connection, self.received[-1])
                except OSError:
                    pass

    def _answer(self, line: str) -> list[str]:
        word = line.split(" ", 1)[0]
        if word == "/login" or (line == "/resume alice token-1" and not self.revoked):
            return ["OK login alice", "ROOM general 1", "END rooms"]
        if word == "/resume":
            return ["ERR bad-credentials :wrong name or token"]
        if word == "/token":
            self.tokens += 1
            return [f"OK token token-{self.tokens}"]
        if line in ("general", "/join general"):
            history = [f"HISTORY general {STAMP} bob :before the restart"]
            if len(self.received) > 1:
                later = format_timestamp(NOW + 60)
                history.append(f"HISTORY general {later} bob :while you were away")
            return ["OK join general", *history, "END history general"]
        return []

    def _converse(self, connection: socket.socket, received: list[str]) -> None:
        connection.settimeout(TIMEOUT)
        connection.sendall(b"HELLO chatroom 1 :Welcome\n")
        for raw in connection.makefile("rb"):
            line = raw.decode("utf-8").rstrip("\r\n")
            received.append(line)
            if line in ("/quit", "exit"):
                connection.sendall(b"BYE :Goodbye\n")
                return
            connection.sendall("".join(f"{a}\n" for a in self._answer(line)).encode())

    def restart(self) -> None:
        """
        What the server says on SIGTERM, then the close.
        """
        with self._lock:
            connection = self._connection
        assert connection is not None
        connection.sendall(b"RECONNECT 1\nBYE :server shutting down\n")
        connection.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        # Shutting the listener down wakes the accept waiting on it.
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._thread.join(TIMEOUT)


@pytest.fixture
def server() -> Iterator[RestartingServer]:
    server = RestartingServer()
    yield server
    server.close()


def test_a_restart_on_a_terminal_reconnects_resumes_and_rejoins(
    server: RestartingServer,
) -> None:
    child, log = spawn_terminal(server.port)
    try:
        dialog(
            child,
            ("login or register? ", "login"),
            ("username: ", "alice"),
            ("password: ", "password1"),
            ("lobby> ", "general"),
            ("before the restart", None),
            ("general> ", None),
        )
        server.restart()
        dialog(
            child,
            ("* server shutting down; reconnecting in ", None),
            ("* reconnected as alice", None),
            ("* joined general", None),
            ("--- missed in general: 1 message ---", None),
            ("bob: while you were away", None),
            ("--- end of history ---", None),
            ("general> ", "exit"),
        )
        child.expect_exact("* bye: Goodbye")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert server.received[0][:3] == ["/login alice password1", "/token", "general"]
    assert server.received[1] == ["/resume alice token-1", "/token", "/join general", "exit"]
    screen = log.getvalue()
    # Nothing of the password or of the tokens shown.
    assert "password1" not in screen and "token-" not in screen
    after = screen.split("* server shutting down; reconnecting in ", 1)[1]
    # The password not asked again.
    assert "password: " not in after
    # One status line: no errors, no second greeting, login or room list.
    assert "! " not in after and "connected to" not in after
    assert "before the restart" not in after
    assert "logged in" not in after and "rooms (" not in after


def test_a_restart_ends_a_script_with_the_lost_connections_status(
    server: RestartingServer, pipe_clients: list[PipeClient]
) -> None:
    client = PipeClient(server.port)
    pipe_clients.append(client)
    client.send("login", "alice", "password1", "general")
    client.expect(r"before the restart$")
    server.restart()
    assert client.wait() == 1
    assert client.seen[-1] == "* bye: server shutting down"
    assert client.stderr == "chatroom-client: the server ended the session: server shutting down\n"
    # No token asked for: a script never resumes.
    assert server.received[0] == ["/login alice password1", "general"]
    assert len(server.received) == 1


def test_a_revoked_token_on_a_terminal_asks_for_the_password(server: RestartingServer) -> None:
    child, log = spawn_terminal(server.port, "--user", "alice")
    try:
        dialog(
            child,
            ("login or register? ", "login"),
            ("password: ", "password1"),
            ("lobby> ", "general"),
            ("before the restart", None),
            ("general> ", None),
        )
        server.revoked = True
        server.restart()
        dialog(
            child,
            ("* server shutting down; reconnecting in ", None),
            ("! could not resume the session: wrong name or token (bad-credentials)", None),
            ("password: ", "password2"),
            ("* joined general", None),
            ("bob: while you were away", None),
            ("general> ", "exit"),
        )
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert server.received[1] == [
        "/resume alice token-1",
        "/login alice password2",
        "/token",
        "/join general",
        "exit",
    ]
    assert "password2" not in log.getvalue()


@pytest.mark.skipif(
    not any(spec.name == "resume" for spec in COMMANDS), reason="a server without session tokens"
)
def test_a_real_server_stopped_and_started_under_a_terminal_client(
    tmp_path: Path, pipe_clients: list[PipeClient]
) -> None:
    # The same port both times, as for a server restarted by its operator.
    port = free_port()
    server = ServerProcess(tmp_path / "data", "--port", f"tcp:{port}:interface=127.0.0.1")
    server.start()
    child, log = spawn_terminal(port)
    try:
        dialog(
            child,
            ("login or register? ", "register"),
            ("username: ", "alice"),
            ("password: ", "password1"),
            ("password again: ", "password1"),
            ("lobby> ", "general"),
            ("general> ", "before the restart"),
            ("alice: before the restart", None),
        )
        assert server.stop() == 0
        child.expect_exact("* server shutting down; reconnecting in ")
        server.restart()
        bob = PipeClient(port)
        pipe_clients.append(bob)
        bob.send("register", "bob", "password2", "general", "while you were away")
        bob.expect(r"bob: while you were away$")
        assert bob.finish() == 0
        dialog(
            child,
            ("* reconnected as alice", None),
            ("* joined general", None),
            # In the history of the join, or live if bob was quicker.
            ("bob: while you were away", None),
            ("general> ", "exit"),
        )
        child.expect(pexpect.EOF)
    finally:
        child.close()
        if server.process is not None and server.process.poll() is None:
            server.kill()
    assert child.exitstatus == 0
    after = log.getvalue().split("reconnecting in ", 1)[1]
    assert "password" not in after and "! " not in after
