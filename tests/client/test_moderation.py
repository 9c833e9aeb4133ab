"""
Moderation as the real client shows it on a pseudo-terminal and through a
pipe, against a scripted server on a real socket: what a person sees when
kicked or locked out does not depend on the server's rights checks, only
on its lines.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pexpect  # type: ignore[import-untyped]
import pytest

from tests.client.helpers import (
    STAMP,
    TIMEOUT,
    PipeClient,
    dialog,
    keys,
    spawn_terminal,
)


class ScriptedServer:
    """
    A chatroom server that greets, then answers each line the client sends
    by its first word, from a script; C{/quit} and C{exit} get C{BYE} and
    the close.  One connection at a time.

    @ivar received: Every line the client sent, in order.
    """

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.received: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(TIMEOUT)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except OSError:
            return
        with connection:
            try:
                self._converse(connection)
            except OSError:
                # The client went away, or the test gave up on it: the
                # test's own checks say what went wrong.
                pass

    def _converse(self, connection: socket.socket) -> None:
        connection.settimeout(TIMEOUT)
        connection.sendall(b"HELLO chatroom 1 :Welcome\n")
        for raw in connection.makefile("rb"):
            line = raw.decode("utf-8").rstrip("\r\n")
            self.received.append(line)
            word = line.split(" ", 1)[0]
            if word in ("/quit", "exit"):
                connection.sendall(b"BYE :Goodbye\n")
                return
            reply = "".join(f"{answer}\n" for answer in self.answers.get(word, []))
            connection.sendall(reply.encode("utf-8"))

    def close(self) -> None:
        self._listener.close()
        self._thread.join(TIMEOUT)


@pytest.fixture
def scripted() -> Iterator[list[ScriptedServer]]:
    servers: list[ScriptedServer] = []
    yield servers
    for server in servers:
        server.close()


_LOGGED_IN = ["OK login alice", "ROOM general 1", "ROOM Lounge 2", "END rooms"]
_JOINED = [
    "OK join Lounge",
    f"HISTORY Lounge {STAMP} mallory :buy now",
    "END history Lounge",
    f"TOPIC Lounge {STAMP} bob :be nice",
]


def test_kicked_on_a_terminal_the_prompt_and_tab_are_the_lobbys(
    scripted: list[ScriptedServer],
) -> None:
    server = ScriptedServer(
        {
            "/login": _LOGGED_IN,
            "Lounge": _JOINED,
            "spam": [f"KICK Lounge {STAMP} bob alice :spam"],
            "/ops": [
                "OPERATOR Lounge bob owner",
                "OPERATOR Lounge carol operator",
                "END ops Lounge",
            ],
        }
    )
    scripted.append(server)
    child, log = spawn_terminal(server.port)
    try:
        dialog(
            child,
            ("login or register? ", "login"),
            ("username: ", "alice"),
            ("password: ", "password1"),
            ("lobby> ", "Lounge"),
            ("* Topic: be nice (set by bob, ", None),
            ("Lounge> ", "/ops"),
            ("* Operators of Lounge: bob (owner), carol", None),
        )
        # Names from moderation lines complete after the commands on users.
        keys(child, ("/kick ca\t", "/kick carol "), ("\x15", "Lounge> "))
        child.sendline("spam")
        dialog(child, ("* bob kicked you out of Lounge (spam)", None), ("lobby> ", None))
        # In the lobby a bare word is a room again: Tab completes it, and it
        # joins.
        keys(child, ("Lou\t", "nge "))
        child.sendline("")
        dialog(child, ("* joined Lounge", None), ("Lounge> ", "exit"))
        child.expect_exact("* bye")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert "password1" not in log.getvalue()
    assert server.received[-2:] == ["Lounge ", "exit"]


def test_a_locked_account_on_a_terminal_ends_with_the_failed_logins_status(
    scripted: list[ScriptedServer],
) -> None:
    server = ScriptedServer({"/login": ["ERR locked :this account is locked"]})
    scripted.append(server)
    child, log = spawn_terminal(server.port)
    try:
        dialog(
            child,
            ("login or register? ", "login"),
            ("username: ", "mallory"),
            ("password: ", "password1"),
            ("! this account is locked (locked)", None),
            ("login refused: this account is locked (locked)", None),
        )
        child.expect(pexpect.EOF)
    finally:
        child.close()
    # As a refused login in a script: not asked again.
    assert child.exitstatus == 1
    assert "login or register? " not in log.getvalue().split("(locked)", 1)[1]


def test_a_locked_account_in_a_script(
    scripted: list[ScriptedServer], pipe_clients: list[PipeClient]
) -> None:
    server = ScriptedServer({"/login": ["ERR locked :this account is locked"]})
    scripted.append(server)
    client = PipeClient(server.port)
    pipe_clients.append(client)
    client.send("login", "mallory", "password1", "general")
    assert client.finish() == 1
    assert client.seen[-1] == "! this account is locked (locked)"
    assert client.stderr == "chatroom-client: login refused: this account is locked (locked)\n"


def test_a_notice_and_a_dropped_room_in_a_script(
    scripted: list[ScriptedServer], pipe_clients: list[PipeClient]
) -> None:
    server = ScriptedServer(
        {
            "/login": _LOGGED_IN,
            "Lounge": _JOINED,
            "/who": [
                f"NOTICE {STAMP} admin :closing Lounge",
                f"DROPPED Lounge {STAMP} admin :spam haven",
            ],
        }
    )
    scripted.append(server)
    client = PipeClient(server.port)
    pipe_clients.append(client)
    client.send("login", "alice", "password1", "Lounge", "/who")
    client.expect(r"^!! Notice from admin: closing Lounge$")
    client.expect(r"^\* admin dropped the room Lounge \(spam haven\)$")
    assert client.finish() == 0
    assert client.seen[-1] == "* bye: Goodbye"
    assert server.received[-1] == "/quit"
