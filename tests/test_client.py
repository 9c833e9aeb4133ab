"""
The bundled client: its logic and rendering fed by hand (server lines into
L{ServerProtocol}, keystrokes into L{ConsoleProtocol}, both on
L{StringTransport}), then the real C{python -m chat.client} against the
real server, through a pipe and through a pseudo-terminal.
"""

from __future__ import annotations

import fcntl
import io
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect  # type: ignore[import-untyped]
import pytest
from OpenSSL.crypto import FILETYPE_PEM, X509, load_certificate
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python import usage
from twisted.python.failure import Failure

from chat.client import (
    HELP,
    ChatClient,
    ConsoleProtocol,
    Options,
    Outcome,
    Phase,
    Renderer,
    Screen,
    ServerProtocol,
    Style,
    Suspension,
    TerminalMode,
    main,
    use_colour,
)
from chat.client.commands import SLASH_COMMANDS, complete, completions
from chat.commands import SLASH_VERBS
from chat.lines import format_timestamp, parse_line, parse_timestamp
from tests.certs import write_certificates

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10

# 2026-11-25T04:50:05.123Z, the example stamp of the protocol contract.
NOW = parse_timestamp("2026-11-25T04:50:05.123Z")
STAMP = format_timestamp(NOW)


@pytest.fixture
def india_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """
    Local time five and a half hours ahead of UTC (a POSIX TZ rule, so no
    tz database is needed), to show that times are rendered locally.
    """
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


class Harness:
    """
    One client wired to fake standard I/O and a fake server connection.
    """

    def __init__(
        self, *, interactive: bool = False, user: str | None = None, colour: bool = False
    ) -> None:
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
        )
        self.console = ConsoleProtocol(self.client, self.screen, interactive)
        self.stdout = StringTransport()
        self.console.makeConnection(self.stdout)
        self.server = ServerProtocol(self.client)
        self.wire = StringTransport()
        self.server.makeConnection(self.wire)
        self.outcomes: list[Outcome] = []
        self.client.finished.addCallback(self.outcomes.append)

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


# Options


def test_options_default_to_loopback_port_5000() -> None:
    options = Options()
    options.parseOptions([])
    assert options.address() == "127.0.0.1:5000"
    assert options["user"] is None


def test_options_host_port_and_user() -> None:
    options = Options()
    options.parseOptions(["--host", "::1", "--port", "6000", "--user", "alice"])
    assert options.address() == "[::1]:6000"
    assert options["user"] == "alice"


def test_options_connect_takes_an_endpoint_string() -> None:
    options = Options()
    options.parseOptions(["--connect", "tcp:chat.test:7000"])
    assert options.address() == "tcp:chat.test:7000"


@pytest.mark.parametrize(
    "argv",
    [
        ["--connect", "tcp:a:1", "--port", "2"],
        ["--connect", "tcp:a:1", "--host", "b"],
        ["--port", "0"],
        ["--port", "70000"],
        ["--port", "five"],
        ["--user", "two words"],
        ["--user", ""],
    ],
)
def test_options_refuse_contradictions_and_nonsense(argv: list[str]) -> None:
    with pytest.raises(usage.UsageError):
        Options().parseOptions(argv)


class TLSTransport(StringTransport):
    """
    A transport that says its TLS handshake is over, with C{certificate}.
    """

    def __init__(self, certificate: X509) -> None:
        super().__init__()
        self.certificate = certificate
        self.aborted = False

    def getPeerCertificate(self) -> X509:
        return self.certificate

    def abortConnection(self) -> None:
        self.aborted = True


@pytest.mark.parametrize(
    ("host", "refusal"),
    [
        ("localhost", None),
        ("127.0.0.1", "the server's certificate could not be verified: it is not for 127.0.0.1"),
        (None, "the server's certificate could not be checked: no host name to check it"),
    ],
)
def test_the_certificate_is_checked_again_after_the_handshake(
    tmp_path: Path, host: str | None, refusal: str | None
) -> None:
    """
    Should the certificate callback have been bypassed, the handshake's end
    still checks the certificate before any server line is read, so the
    login is never sent.
    """
    certs = write_certificates(tmp_path, ["localhost"])
    certificate = load_certificate(FILETYPE_PEM, certs.cert.read_bytes())
    h = Harness()
    server = ServerProtocol(h.client, host)
    transport = TLSTransport(certificate)
    server.makeConnection(transport)
    h.type("login\nalice\npassword1\n")
    server.handshakeCompleted()
    server.dataReceived(b"HELLO chatroom 1 :Welcome\n")
    if refusal is None:
        assert not transport.aborted
        assert transport.value() == b"/login alice password1\n"
        return
    assert transport.aborted
    assert transport.value() == b""
    server.connectionLost(Failure(ConnectionDone()))
    [outcome] = h.outcomes
    assert outcome.code == 1
    assert outcome.reason is not None
    assert outcome.reason.startswith(f"cannot connect to chat.test:5000: {refusal}")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "abc"], "--port: abc is not a port number (1-65535)"),
        (["-p", "0"], "--port: 0 is not a port number (1-65535)"),
        (["--port", "70000"], "--port: 70000 is not a port number (1-65535)"),
        (["--port", "+80"], "--port: +80 is not a port number (1-65535)"),
        (["--port"], "option --port requires argument"),
        (["--host", ""], "--host: '' is not a host name or address"),
        (["--user", "two words"], "--user: 'two words' is not a username (one word)"),
        (["--cafile", "/nonexistent/ca.pem"], "--cafile: /nonexistent/ca.pem: No such file"),
        (["--connect", "tcp:chat.test:abc"], "--connect: tcp:chat.test:abc is not a client"),
        (["--connect", "nope:chat.test"], "--connect: nope:chat.test is not a client"),
        (["--connect", "tcp:chat.test"], "--connect: tcp:chat.test is not a client"),
        (["--bogus"], "option --bogus not recognized"),
        (["chat.test"], "unexpected argument 'chat.test' (options start with --)"),
        (["--connect", "tcp:a:1", "--port", "2"], "use either --connect or --host/--port"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"chatroom-client: {message}")
    assert err.endswith("; see --help\n")
    assert err.count("\n") == 1


def test_bad_port_from_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chat.client", "--port", "abc"],
        cwd=ROOT,
        env=client_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "chatroom-client: --port: abc is not a port number (1-65535); see --help\n"
    )


def test_colour_only_on_a_terminal_without_no_color() -> None:
    read, write = os.pipe()
    try:
        assert not use_colour(write, {})
    finally:
        os.close(read)
        os.close(write)
    primary, secondary = os.openpty()
    try:
        assert use_colour(secondary, {})
        assert use_colour(secondary, {"NO_COLOR": ""})
        assert not use_colour(secondary, {"NO_COLOR": "1"})
        assert not use_colour(secondary, {"TERM": "dumb"})
    finally:
        os.close(primary)
        os.close(secondary)


def test_terminal_mode_is_given_back_and_taken_again() -> None:
    """
    Ctrl-Z gives the terminal back as the user had it, C{fg} (SIGCONT)
    takes cbreak mode again, and redraws through the reactor.
    """
    primary, secondary = os.openpty()
    try:

        def lflags() -> tuple[bool, bool]:
            mode = termios.tcgetattr(secondary)
            return bool(mode[3] & termios.ICANON), bool(mode[3] & termios.ECHO)

        terminal = TerminalMode(secondary)
        terminal.cbreak()
        assert lflags() == (False, False)
        terminal.suspend()
        assert lflags() == (True, True)
        redraws: list[Any] = []
        suspension = Suspension(terminal, redraws.append, lambda: None)
        suspension.install()
        try:
            os.kill(os.getpid(), signal.SIGCONT)
        finally:
            suspension.uninstall()
        assert lflags() == (False, False)
        assert fcntl.fcntl(secondary, fcntl.F_GETFL) & os.O_NONBLOCK
        assert len(redraws) == 1
        assert signal.getsignal(signal.SIGCONT) == signal.SIG_DFL
        terminal.restore()
        assert lflags() == (True, True)
        terminal.resume()
        assert lflags() == (True, True)
    finally:
        os.close(primary)
        os.close(secondary)


# Rendering


def render(*lines: str, colour: bool = False, me: str | None = None) -> list[str]:
    renderer = Renderer(Style(colour), lambda: NOW)
    renderer.me = me
    renderer.room = "general"
    out: list[str] = []
    for line in lines:
        out += renderer.render(parse_line(line))
    return out


def test_message_time_is_local(india_time: None) -> None:
    assert render(f"MSG general {STAMP} alice :hello") == ["[10:20:05] alice: hello"]


def test_message_from_another_day_shows_the_date(india_time: None) -> None:
    old = format_timestamp(NOW - 3 * 86400)
    assert render(f"MSG general {old} alice :hi") == ["[2026-11-22 10:20:05] alice: hi"]


def test_history_is_framed_as_history(india_time: None) -> None:
    assert render(
        "OK join general",
        f"HISTORY general {STAMP} alice :first",
        f"HISTORY general {STAMP} bob :second",
        "END history general",
    ) == [
        "* joined general",
        "--- history of general: last 2 messages ---",
        "[10:20:05] alice: first",
        "[10:20:05] bob: second",
        "--- end of history ---",
    ]


def test_empty_history_says_so() -> None:
    assert render("OK join general", "END history general") == [
        "* joined general",
        "* no messages in general yet",
    ]


def test_system_lines_are_marked(india_time: None) -> None:
    assert render(
        "HELLO chatroom 1 :Welcome to chatroom.",
        "OK login alice",
        "OK register alice",
        "OK create lounge",
        "OK leave lounge",
        f"JOIN general {STAMP} bob",
        f"PART general {STAMP} bob",
        "ERR no-such-room :no room named nope",
        "ERR rate-limited",
        "INFO :some help",
        "END help",
        "BYE :Goodbye",
    ) == [
        "* connected to chatroom 1: Welcome to chatroom.",
        "* logged in as alice",
        "* registered and logged in as alice",
        "* created room lounge",
        "* left lounge",
        "* [10:20:05] bob joined general",
        "* [10:20:05] bob left general",
        "! no room named nope (no-such-room)",
        "! rate-limited",
        "* some help",
        "* bye: Goodbye",
    ]


def test_room_list_and_members_are_blocks() -> None:
    assert render("ROOM general 2", "ROOM lounge-42 1", "END rooms") == [
        "* rooms (2):",
        "*   general    2 people",
        "*   lounge-42  1 person",
    ]
    assert render("END rooms") == ['* no rooms yet; "create <room>" makes one']
    assert render("MEMBER general alice", "MEMBER general bob", "END members general") == [
        "* in general (2): alice, bob"
    ]


def test_lines_the_client_does_not_know_are_shown_marked() -> None:
    assert render("WHAT is this :thing", "MSG general") == [
        "? WHAT is this :thing",
        "? MSG general",
    ]


def test_control_characters_from_the_network_are_defused() -> None:
    [line] = render(f"MSG general {STAMP} mallory :\x1b[2Jgone\x07\x9b31m\tok")
    assert "\x1b" not in line and "\x07" not in line and "\x9b" not in line
    assert line.endswith(": ^[[2Jgone^G\ufffd31m\tok")


def test_colour_when_enabled_and_none_otherwise() -> None:
    lines = [
        f"MSG general {STAMP} alice :hi",
        "ERR bad-name :no",
        f"JOIN general {STAMP} bob",
    ]
    plain = render(*lines)
    coloured = render(*lines, colour=True, me="alice")
    assert not any("\x1b" in line for line in plain)
    assert all("\x1b[" in line for line in coloured)
    assert [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in coloured] == plain
    history = render(f"HISTORY general {STAMP} alice :old", "END history general", colour=True)[1]
    assert re.fullmatch(r"\x1b\[2m\[[0-9:]{8}\] alice: old\x1b\[0m", history)


# The session, as a script drives it


def test_login_waits_for_hello_then_sends_one_explicit_command() -> None:
    h = Harness()
    h.type("login\nalice\npass word 1\n")
    assert h.sent() == []
    h.hear("HELLO chatroom 1 :Welcome")
    assert h.sent() == ["/login alice pass word 1"]
    assert h.client.phase is Phase.AUTHENTICATING


def test_register_and_user_option() -> None:
    h = Harness(user="alice")
    h.hear("HELLO chatroom 1 :Welcome")
    h.type("REGISTER\npassword1\n")
    assert h.sent() == ["/register alice password1"]


def test_explicit_login_command_is_accepted_as_the_first_line() -> None:
    h = Harness()
    h.hear("HELLO chatroom 1 :Welcome")
    h.type("/login alice password1\n")
    assert h.sent() == ["/login alice password1"]


def test_lines_after_the_login_wait_for_its_answer() -> None:
    h = Harness()
    h.hear("HELLO chatroom 1 :Welcome")
    h.type("login\nalice\npassword1\ngeneral\nhello\n//slash\ncreate lounge\n")
    assert h.sent() == ["/login alice password1"]
    h.hear("OK login alice", "ROOM general 0", "END rooms")
    assert h.sent() == ["general", "hello", "//slash", "create lounge"]
    assert h.client.phase is Phase.CHAT
    assert h.lines() == [
        "* connected to chatroom 1: Welcome",
        "* logged in as alice",
        "* rooms (1):",
        "*   general  0 people",
    ]


def test_end_of_input_quits_and_bye_then_close_is_success() -> None:
    h = Harness()
    h.logged_in()
    h.console.readConnectionLost()
    assert h.sent() == ["/quit"]
    assert h.outcomes == []
    h.hear("BYE :Goodbye")
    assert h.outcomes == []
    h.lose(ConnectionDone())
    assert h.outcomes == [Outcome(0)]
    assert h.lines() == ["* bye: Goodbye"]


def test_exit_typed_by_the_script_is_a_quit() -> None:
    h = Harness()
    h.logged_in()
    h.type("exit\nnever sent\n")
    h.console.readConnectionLost()
    assert h.sent() == ["exit"]
    h.hear("BYE :Goodbye")
    h.lose(ConnectionDone())
    assert h.outcomes == [Outcome(0)]


def test_control_characters_are_dropped_before_deciding_what_a_line_is() -> None:
    h = Harness()
    h.logged_in()
    h.hear("OK join general", "END history general")
    h.type("\x07/who\n\x1b[31m/rooms\n\x1b[1mhel\x00lo\tthere\x7f\n\x07\n\x1bOA/help\n")
    assert h.sent() == ["/who", "/rooms", "hello\tthere", "/help"]
    h.hear("INFO :server text", "END help")
    assert h.lines()[-len(HELP.splitlines()) :] == [f"* {line}" for line in HELP.splitlines()]
    h.type("\x07/quit\nnever sent\n")
    assert h.sent() == ["/quit"]
    h.hear("BYE :Goodbye")
    h.lose(ConnectionDone())
    assert h.outcomes == [Outcome(0)]


def test_last_line_without_newline_is_sent() -> None:
    h = Harness()
    h.logged_in()
    h.type("no newline")
    h.console.readConnectionLost()
    assert h.sent() == ["no newline", "/quit"]


def test_refused_login_in_a_script_fails_with_one_line() -> None:
    h = Harness()
    h.hear("HELLO chatroom 1 :Welcome")
    h.type("login\nalice\nwrong-password\ngeneral\n")
    h.sent()
    h.hear("ERR bad-credentials :wrong name or password")
    [outcome] = h.outcomes
    assert outcome.code == 1
    assert outcome.reason == "login refused: wrong name or password (bad-credentials)"
    assert h.wire.disconnecting
    assert h.sent() == []
    assert "wrong-password" not in h.output()


def test_bad_first_line_in_a_script_fails_without_echoing_it() -> None:
    h = Harness()
    h.hear("HELLO chatroom 1 :Welcome")
    h.type("s3cret-password\n")
    [outcome] = h.outcomes
    assert outcome.code == 1
    assert outcome.reason is not None and "s3cret" not in outcome.reason


def test_input_ending_before_the_login_fails() -> None:
    h = Harness()
    h.type("login\nalice\n")
    h.console.readConnectionLost()
    h.hear("HELLO chatroom 1 :Welcome")
    assert h.outcomes == [Outcome(1, "standard input ended before the login was complete")]


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        (ConnectionDone(), "chat.test:5000 closed the connection"),
        (ConnectionLost("reset"), "lost the connection to chat.test:5000: "),
    ],
)
def test_connection_dropped_is_a_failure(reason: Exception, message: str) -> None:
    h = Harness()
    h.logged_in()
    h.lose(reason)
    [outcome] = h.outcomes
    assert outcome.code == 1
    assert outcome.reason is not None and outcome.reason.startswith(message)
    assert "\n" not in outcome.reason


def test_server_shutdown_is_a_failure_with_its_words() -> None:
    h = Harness()
    h.logged_in()
    h.hear("BYE :Server shutting down")
    h.lose(ConnectionDone())
    assert h.outcomes == [Outcome(1, "the server ended the session: Server shutting down")]


def test_not_a_chatroom_server() -> None:
    h = Harness()
    h.hear("SSH-2.0-OpenSSH_9.6")
    assert h.outcomes == [Outcome(1, "chat.test:5000 is not a chatroom server")]


def test_a_silent_server_is_given_up_on() -> None:
    h = Harness()
    h.clock.advance(9.9)
    assert h.outcomes == []
    h.clock.advance(0.1)
    assert h.outcomes == [
        Outcome(1, "chat.test:5000 sent no greeting in 10 s (a TLS port? try --tls)")
    ]


def test_the_greeting_timer_stops_at_hello() -> None:
    h = Harness()
    h.hear("HELLO chatroom 1 :Welcome")
    h.clock.advance(60)
    assert h.outcomes == []


def test_help_is_the_clients_list_in_order_with_the_replies() -> None:
    h = Harness()
    h.logged_in()
    h.type("/who\n/help\n")
    assert h.sent() == ["/who", "/help"]
    h.hear("MEMBER general alice", "END members general", "INFO :server text", "END help")
    assert h.lines() == [
        "* in general (1): alice",
        *(f"* {line}" for line in HELP.splitlines()),
    ]


def test_sending_is_paced_under_the_flood_limit() -> None:
    h = Harness()
    h.logged_in()
    h.type("".join(f"line {n}\n" for n in range(40)))
    assert len(h.sent()) == 16
    h.clock.advance(1)
    assert len(h.sent()) == 8
    h.clock.advance(3)
    assert h.sent() == [f"line {n}" for n in range(24, 40)]


# The session on a terminal

# Keys as xterm and tmux send them.
UP, DOWN, LEFT, RIGHT = "\x1b[A", "\x1b[B", "\x1b[D", "\x1b[C"
HOME, END, DELETE = "\x1b[H", "\x1b[F", "\x1b[3~"


def test_terminal_login_hides_the_password() -> None:
    h = Harness(interactive=True)
    h.hear("HELLO chatroom 1 :Welcome")
    assert h.output().endswith("login or register? ")
    h.type("login\r")
    assert h.output().endswith("username: ")
    h.type("alice\r")
    assert h.output().endswith("password: ")
    h.type("hunter2-secret\r")
    assert "hunter2" not in h.output()
    assert h.sent() == ["/login alice hunter2-secret"]


def test_terminal_register_asks_twice_and_retries_on_mismatch() -> None:
    h = Harness(interactive=True, user="alice")
    h.hear("HELLO chatroom 1 :Welcome")
    h.type("r\rpassword1\rpassword2\r")
    out = h.output()
    assert "the two passwords differ" in out
    assert out.endswith("password: ")
    h.type("password1\rpassword1\r")
    assert h.sent() == ["/register alice password1"]
    assert "password1" not in h.output()


@pytest.mark.parametrize("start", ["r\ralice\rshort\rshort\r", "/register alice short\r"])
def test_terminal_weak_registration_password_is_asked_for_again(start: str) -> None:
    h = Harness(interactive=True)
    h.hear("HELLO chatroom 1 :Welcome")
    h.type(start)
    assert h.sent() == ["/register alice short"]
    h.output()
    h.hear("ERR weak-password :a password is 8 to 128 characters")
    assert h.client.phase is Phase.ASK_PASSWORD
    assert h.output().endswith("password: ")
    h.type("longer-secret\rlonger-secret\r")
    assert h.sent() == ["/register alice longer-secret"]
    assert "longer-secret" not in h.output()


@pytest.mark.parametrize(
    ("user", "asked"), [(None, "username: "), ("alice", "login or register? ")]
)
def test_terminal_taken_name_is_asked_for_again(user: str | None, asked: str) -> None:
    h = Harness(interactive=True, user=user)
    h.hear("HELLO chatroom 1 :Welcome")
    h.type("register\r" + ("alice\r" if user is None else "") + "password1\rpassword1\r")
    assert h.sent() == ["/register alice password1"]
    h.hear("ERR name-taken :alice is taken")
    assert h.output().endswith(asked)


def test_terminal_refused_login_asks_again() -> None:
    h = Harness(interactive=True)
    h.hear("HELLO chatroom 1 :Welcome")
    h.type("login\ralice\rwrong-password\r")
    h.sent()
    h.hear("ERR bad-credentials :wrong name or password")
    assert h.outcomes == []
    assert h.output().endswith("login or register? ")


def test_incoming_lines_redraw_the_prompt_and_typed_text(india_time: None) -> None:
    h = Harness(interactive=True)
    h.logged_in()
    h.hear("OK join general", "END history general")
    h.output()
    h.type("half a sen")
    assert h.output() == "half a sen"
    h.hear(f"MSG general {STAMP} bob :hi")
    assert h.output() == "\r\x1b[K[10:20:05] bob: hi\r\ngeneral> half a sen"
    # Typing in the middle redraws what follows, and the cursor stays
    # where it is, under an incoming line too.
    h.type(LEFT * 3 + "x")
    assert h.output() == "\x1b[1D\x1b[1D\x1b[1Dxsen\x1b[3D"
    h.hear(f"MSG general {STAMP} bob :hi")
    assert h.output() == "\r\x1b[K[10:20:05] bob: hi\r\ngeneral> half a xsen\x1b[3D"


def test_terminal_line_editing() -> None:
    h = Harness(interactive=True)
    h.logged_in()
    # Backspace, an arrow key, Ctrl-W, Ctrl-U, a multi-byte character in
    # two reads, CR LF counted once.
    h.type("helo\x7flo\x1b[Dw\x17word\x15")
    h.console.dataReceived("café".encode()[:4])
    h.console.dataReceived("café".encode()[4:] + b"\r\n")
    assert h.sent() == ["café"]


def test_chat_messages_are_not_echoed_twice_but_commands_are() -> None:
    h = Harness(interactive=True)
    h.logged_in()
    h.hear("OK join general", "END history general")
    h.output()
    h.type("hello")
    h.output()
    h.type("\r")
    assert "hello" not in h.output()
    h.type("/who\r")
    assert "general> /who\r\n" in h.output()


def test_ctrl_d_on_an_empty_line_quits() -> None:
    h = Harness(interactive=True)
    h.logged_in()
    h.type("x\x04")
    assert h.sent() == []
    h.type("\x7f\x04")
    assert h.sent() == ["/quit"]


def in_room(*, rooms: tuple[str, ...] = ("general",)) -> Harness:
    h = Harness(interactive=True)
    h.hear("HELLO chatroom 1 :Welcome")
    h.type("login\ralice\rpassword1\r")
    h.sent()
    h.hear("OK login alice", *(f"ROOM {room} 1" for room in rooms), "END rooms")
    h.hear("OK join general", "END history general")
    h.output()
    return h


def test_up_and_down_go_through_the_history() -> None:
    h = in_room()
    h.type("first\rsecond\r")
    assert h.sent() == ["first", "second"]
    h.type(UP + UP + "\r")
    assert h.sent() == ["first"]
    h.type(UP + UP + DOWN + "!\r")
    assert h.sent() == ["first!"]
    h.type("draft" + UP + DOWN + "\r")
    assert h.sent() == ["draft"]
    # Ctrl-P and Ctrl-N too, and the same line twice is kept once.
    h.type("draft\r\x10\x10\x0e\r")
    assert h.sent() == ["draft", "draft"]


def test_history_never_holds_a_password_or_a_login_answer() -> None:
    h = Harness(interactive=True)
    h.hear("HELLO chatroom 1 :Welcome")
    h.type("login\ralice\rhunter2-secret\r")
    assert h.sent() == ["/login alice hunter2-secret"]
    h.hear("OK login alice", "END rooms")
    h.output()
    h.type(UP + UP + UP + "\r")
    assert h.sent() == []
    assert h.screen.historyLines == []
    assert "hunter2" not in h.output()


def test_cursor_keys_edit_in_the_middle_of_the_line() -> None:
    h = in_room()
    h.type("hllo" + HOME + RIGHT + "e" + END + "!" + LEFT + LEFT + "\x7f" + DELETE + "\r")
    assert h.sent() == ["hel!"]
    # Ctrl-A, Ctrl-E, Ctrl-B, Ctrl-F, the other Home/End sequences, and
    # Ctrl-K, Ctrl-W before the cursor.
    h.type("world\x01hello \x05\x02\x02\x0b\x06\x06x\r")
    assert h.sent() == ["hello worx"]
    h.type("one two three\x1b[1~\x1b[4~" + LEFT * 5 + "\x17\r")
    assert h.sent() == ["one three"]
    # Ctrl-D inside a line deletes, as Delete does.
    h.type("abc" + LEFT + LEFT + "\x04\r")
    assert h.sent() == ["ac"]


def assert_editing(h: Harness, *steps: tuple[str, str]) -> None:
    """
    Type each step's keys, then check the input line.
    """
    for keys, line in steps:
        h.type(keys)
        assert (keys, h.screen.text) == (keys, line)


def test_tab_completes_commands_and_rooms() -> None:
    h = in_room(rooms=("general", "lounge-42"))
    assert_editing(h, ("/jo\t", "/join "), ("lo\t", "/join lounge-42 "))
    h.type("\r")
    assert h.sent() == ["/join lounge-42 "]
    assert_editing(
        h,
        ("/wh\tx", "/who x"),
        # /leave and /login share no more than "/l": both are listed.
        ("\x15/l\t", "/l"),
    )
    assert "/leave  /login" in h.output()
    assert_editing(
        h,
        ("\x15/j\t\t", "/join "),
        ("\x15hello /w\t", "hello /w"),  # only the first word is a command
    )


def test_tab_in_the_lobby_and_at_the_first_question() -> None:
    h = Harness(interactive=True)
    h.hear("HELLO chatroom 1 :Welcome")
    assert_editing(h, ("reg\t", "register "), ("\ralice\rpass\t", "pass"))
    h.type("word1\rpassword1\r")
    assert h.sent() == ["/register alice password1"]
    h.hear("OK register alice", "ROOM general 0", "ROOM games 1", "END rooms")
    assert_editing(h, ("g\t", "g"))
    assert "games  general" in h.output()
    assert_editing(h, ("e\t", "general "), ("\x15cr\t", "create "))


def test_completions_come_from_the_servers_command_table() -> None:
    assert set(SLASH_COMMANDS) == {f"/{verb}" for verb in SLASH_VERBS}
    assert completions("/", asking_mode=False, in_lobby=False) == list(SLASH_COMMANDS)
    assert completions("/JO", asking_mode=False, in_lobby=True) == []
    assert completions("l", asking_mode=True, in_lobby=True) == ["login"]
    assert completions("alice l", asking_mode=True, in_lobby=True) == []
    assert completions("", asking_mode=False, in_lobby=True, rooms=["b", "a"]) == [
        "a",
        "b",
        "create",
        "exit",
    ]
    assert completions("/JOIN  g", asking_mode=False, in_lobby=False, rooms=["general"]) == [
        "general"
    ]
    assert completions("/create g", asking_mode=False, in_lobby=False, rooms=["general"]) == []
    assert complete("/j", ["/join"]) == "oin "
    assert complete("g", ["games", "general"]) == ""
    assert complete("l", ["lounge", "lounge-2"]) == "ounge"


# The real client against the real server


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


@pytest.fixture
def pipe_clients() -> Iterator[list[PipeClient]]:
    clients: list[PipeClient] = []
    yield clients
    for client in clients:
        if client.process.poll() is None:
            client.process.kill()
            client.process.wait()


def test_two_clients_chat_through_pipes(chat_server: Any, pipe_clients: list[PipeClient]) -> None:
    alice = PipeClient(chat_server.port)
    bob = PipeClient(chat_server.port)
    pipe_clients += [alice, bob]
    alice.send("register", "alice", "password1", "create lounge")
    alice.expect(r"^\* registered and logged in as alice$")
    alice.expect(r"^\* joined lounge$")
    alice.expect(r"^\* no messages in lounge yet$")
    bob.send("register", "bob", "password2", "/rooms")
    bob.expect(r"^\*   lounge +1 person$")
    bob.send("lounge")
    bob.expect(r"^\* joined lounge$")
    alice.expect(r"^\* \[\d\d:\d\d:\d\d\] bob joined lounge$")
    bob.send("hello alice", "//slash")
    alice.expect(r"^\[\d\d:\d\d:\d\d\] bob: hello alice$")
    alice.expect(r"^\[\d\d:\d\d:\d\d\] bob: /slash$")
    alice.send("hi bob")
    bob.expect(r"^\[\d\d:\d\d:\d\d\] alice: hi bob$")
    bob.send("/who")
    bob.expect(r"^\* in lounge \(2\): ")
    alice.send("exit")
    alice.expect(r"^\* bye")
    assert alice.wait() == 0
    bob.expect(r"^\* \[\d\d:\d\d:\d\d\] alice left lounge$")
    assert bob.finish() == 0
    assert bob.seen[-1].startswith("* bye")
    assert alice.stderr == bob.stderr == ""


def test_login_with_user_option_shows_history(
    chat_server: Any, pipe_clients: list[PipeClient]
) -> None:
    first = PipeClient(chat_server.port)
    pipe_clients.append(first)
    first.send("register", "alice", "password1", "general", "remember this")
    first.expect(r"alice: remember this$")
    assert first.finish() == 0

    again = PipeClient(chat_server.port, "--user", "ALICE")
    pipe_clients.append(again)
    again.send("login", "password1", "general")
    assert again.finish() == 0
    assert again.stderr == ""
    start = again.seen.index("* logged in as alice")
    assert again.seen[start + 3 :] == [
        "* joined general",
        "--- history of general: last 1 message ---",
        again.seen[start + 5],
        "--- end of history ---",
        "* bye: Goodbye",
    ]
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] alice: remember this", again.seen[start + 5])


def test_refused_login_exits_1_with_one_line(
    chat_server: Any, pipe_clients: list[PipeClient]
) -> None:
    client = PipeClient(chat_server.port)
    pipe_clients.append(client)
    client.send("login", "nobody", "password1", "general")
    assert client.finish() == 1
    assert client.stderr.count("\n") == 1
    assert "bad-credentials" in client.stderr
    assert "Traceback" not in client.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_unreachable_server_exits_1_with_one_line() -> None:
    result = subprocess.run(
        client_command(free_port()),
        cwd=ROOT,
        env=client_env(),
        input="login\nalice\npassword1\n",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("chatroom-client: cannot connect to 127.0.0.1:")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_server_killed_mid_chat_exits_1_with_a_reason(
    chat_server: Any, pipe_clients: list[PipeClient]
) -> None:
    client = PipeClient(chat_server.port)
    pipe_clients.append(client)
    client.send("register", "alice", "password1", "general", "anyone?")
    client.expect(r"alice: anyone\?$")
    chat_server.kill()
    assert client.wait() == 1
    assert re.fullmatch(
        r"chatroom-client: (127\.0\.0\.1:\d+ closed the connection"
        r"|lost the connection to 127\.0\.0\.1:\d+: .*)\n",
        client.stderr,
    )


def test_server_shutdown_exits_1_with_its_goodbye(
    chat_server: Any, pipe_clients: list[PipeClient]
) -> None:
    client = PipeClient(chat_server.port)
    pipe_clients.append(client)
    client.send("register", "alice", "password1", "general")
    client.expect(r"^\* joined general$")
    chat_server.stop()
    assert client.wait() == 1
    assert client.seen[-1].startswith("* bye")
    assert client.stderr.startswith("chatroom-client: the server ended the session")
    assert client.stderr.count("\n") == 1


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


def test_terminal_session(chat_server: Any, pipe_clients: list[PipeClient]) -> None:
    """
    On a pseudo-terminal: a refused login is asked again, registering asks
    for the password twice, no password ever appears, an incoming message
    does not disturb the line being typed, Ctrl-D quits cleanly.
    """
    child, log = spawn_terminal(chat_server.port)
    try:
        child.expect_exact("login or register? ")
        child.sendline("login")
        child.expect_exact("username: ")
        child.sendline("alice")
        child.expect_exact("password: ")
        child.sendline("Wrong-Secret")
        child.expect_exact("(bad-credentials)")
        child.expect_exact("login or register? ")
        child.sendline("register")
        child.expect_exact("username: ")
        child.sendline("alice")
        child.expect_exact("password: ")
        child.sendline("Sekrit-Passw0rd")
        child.expect_exact("password again: ")
        child.sendline("Sekrit-Passw0rd")
        child.expect_exact("* registered and logged in as alice")
        child.expect_exact("lobby> ")
        child.sendline("general")
        child.expect_exact("* joined general")
        child.expect_exact("general> ")
        child.send("half-typed")
        child.expect_exact("general> half-typed")

        bob = PipeClient(chat_server.port)
        pipe_clients.append(bob)
        bob.send("register", "bob", "password2", "general", "hello from a pipe")
        child.expect(r"\[\d\d:\d\d:\d\d\] bob: hello from a pipe\r\r?\ngeneral> half-typed")
        assert bob.finish() == 0

        child.send(" line\r")
        child.expect(r"\] alice: half-typed line")
        child.sendcontrol("d")
        child.expect_exact("* bye")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    output = log.getvalue()
    assert "Sekrit" not in output
    assert "Wrong-Secret" not in output
    assert "\x1b[0m" not in output  # NO_COLOR


def test_terminal_weak_password_is_asked_for_again(chat_server: Any) -> None:
    """
    A password the server finds too short is asked for again, twice and
    hidden, instead of going back to "login or register?", which echoes.
    """
    child, log = spawn_terminal(chat_server.port)
    try:
        child.expect_exact("login or register? ")
        child.sendline("register")
        child.expect_exact("username: ")
        child.sendline("carol")
        child.expect_exact("password: ")
        child.sendline("Wk7x")
        child.expect_exact("password again: ")
        child.sendline("Wk7x")
        child.expect_exact("(weak-password)")
        child.expect_exact("password: ")
        child.sendline("Str0ng-Passw0rd")
        child.expect_exact("password again: ")
        child.sendline("Str0ng-Passw0rd")
        child.expect_exact("* registered and logged in as carol")
        child.expect_exact("lobby> ")
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    output = log.getvalue()
    assert "Wk7x" not in output
    assert "Str0ng" not in output


def test_terminal_tab_history_and_cursor_keys(chat_server: Any) -> None:
    """
    On a pseudo-terminal against the real server: Tab completes the answer,
    a command and a room; Up brings the last line back; Home, End and the
    arrows edit in the middle of it.
    """
    child, log = spawn_terminal(chat_server.port)
    try:
        child.expect_exact("login or register? ")
        for keys, shown in [
            ("reg\t", "register "),
            ("\r", "username: "),
            ("dave\r", "password: "),
            ("Dave-Passw0rd\r", "password again: "),
            ("Dave-Passw0rd\r", "lobby> "),
            ("/jo\t", "/join "),
            ("gen\t", "general "),
            ("\r", "general> "),
            ("helo world" + HOME + RIGHT * 3 + "l\r", "] dave: hello world\r"),
            (UP + LEFT * 5 + "big " + END + "!\r", "] dave: hello big world!\r"),
            ("\x04", "* bye"),
        ]:
            child.send(keys)
            child.expect_exact(shown)
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert "Dave-Passw0rd" not in log.getvalue()


@pytest.mark.parametrize("shell", ["bash", "dash"])
def test_ctrl_z_and_fg_keep_the_password_hidden(chat_server: Any, shell: str) -> None:
    """
    Ctrl-Z gives the shell the terminal as the user had it (dash does not
    restore it itself), and C{fg} takes cbreak mode again (bash puts its
    own mode back, echo on, when a job stops): the password typed after
    C{fg} is not echoed, and the input line is redrawn.
    """
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell}")
    log = io.StringIO()
    args = ["--norc", "--noprofile", "-i"] if shell == "bash" else ["-i"]
    child = pexpect.spawn(
        shell,
        args,
        cwd=str(ROOT),
        env=client_env(NO_COLOR="1", PS1="shell$ ", TERM="xterm"),
        encoding="utf-8",
        timeout=TIMEOUT,
        dimensions=(24, 200),
    )
    child.logfile_read = log
    try:
        child.expect_exact("shell$ ")
        child.sendline(" ".join(client_command(chat_server.port)))
        child.expect_exact("login or register? ")
        child.sendline("register")
        child.expect_exact("username: ")
        child.sendline("zoe")
        child.expect_exact("password: ")
        assert not child.getecho()
        child.sendcontrol("z")
        child.expect("Stopped")
        child.expect_exact("shell$ ")
        # The terminal is the user's again: what is typed is echoed.
        child.sendline("echo still-here")
        child.expect_exact("echo still-here\r\n")
        child.expect_exact("still-here\r\n")
        child.sendline("fg")
        # Redrawn once the terminal is the client's again.
        child.expect_exact("password: ")
        assert not child.getecho()
        child.sendline("Hidden-After-Fg")
        child.expect_exact("password again: ")
        assert not child.getecho()
        child.sendline("Hidden-After-Fg")
        child.expect_exact("* registered and logged in as zoe")
        child.expect_exact("lobby> ")
        child.sendcontrol("d")
        child.expect_exact("* bye")
        child.expect_exact("shell$ ")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert "Hidden" not in log.getvalue()


def test_ctrl_z_that_cannot_stop_the_client_changes_nothing(chat_server: Any) -> None:
    """
    Started as a session leader (no shell, no job control), the client's
    process group is orphaned and the kernel ignores the stop: the client
    goes on, and must not be left with the terminal echoing.
    """
    child, log = spawn_terminal(chat_server.port)
    try:
        child.expect_exact("login or register? ")
        child.sendline("login")
        child.expect_exact("username: ")
        child.sendline("zoe")
        child.expect_exact("password: ")
        child.sendcontrol("z")
        child.sendline("Not-Stopped-Secret")
        child.expect_exact("(bad-credentials)")
        assert not child.getecho()
        child.expect_exact("login or register? ")
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert "Not-Stopped" not in log.getvalue()
