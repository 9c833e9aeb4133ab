"""
The real C{python -m chat.client} against the real server, through pipes and on a pseudo-terminal.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from typing import Any

import pexpect  # type: ignore[import-untyped]
import pytest

from tests.client.helpers import (
    END,
    HOME,
    LEFT,
    RIGHT,
    ROOT,
    TIMEOUT,
    UP,
    PipeClient,
    client_command,
    client_env,
    dialog,
    free_port,
    keys,
    spawn_terminal,
)


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


def test_terminal_session(chat_server: Any, pipe_clients: list[PipeClient]) -> None:
    """
    On a pseudo-terminal: a refused login is asked again, registering asks
    for the password twice, no password ever appears, an incoming message
    does not disturb the line being typed, Ctrl-D quits cleanly.
    """
    child, log = spawn_terminal(chat_server.port)
    try:
        dialog(
            child,
            ("login or register? ", "login"),
            ("username: ", "alice"),
            ("password: ", "Wrong-Secret"),
            ("(bad-credentials)", None),
            ("login or register? ", "register"),
            ("username: ", "alice"),
            ("password: ", "Sekrit-Passw0rd"),
            ("password again: ", "Sekrit-Passw0rd"),
            ("* registered and logged in as alice", None),
            ("lobby> ", "general"),
            ("* joined general", None),
            ("general> ", None),
        )
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
        dialog(
            child,
            ("login or register? ", "register"),
            ("username: ", "carol"),
            ("password: ", "Wk7x"),
            ("password again: ", "Wk7x"),
            ("(weak-password)", None),
            ("password: ", "Str0ng-Passw0rd"),
            ("password again: ", "Str0ng-Passw0rd"),
            ("* registered and logged in as carol", None),
            ("lobby> ", None),
        )
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
        keys(
            child,
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
        )
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


def test_a_private_message_sent_while_away_is_shown_at_login(
    chat_server: Any, pipe_clients: list[PipeClient]
) -> None:
    """
    alice writes to bob while he is offline; when bob starts the client,
    the message is there at once, marked as missed, and the conversation
    reads back in order for both.
    """
    bob = PipeClient(chat_server.port)
    pipe_clients.append(bob)
    bob.send("register", "bob", "password2")
    bob.expect(r"^\* registered and logged in as bob$")
    assert bob.finish() == 0

    alice = PipeClient(chat_server.port)
    pipe_clients.append(alice)
    alice.send("register", "alice", "password1", "/msg BOB are you there?")
    alice.expect(r"^\[\d\d:\d\d:\d\d\] you → bob: are you there\?$")
    alice.send("/dm bob", "second line, typed in the conversation", "//slash too", "/room")
    alice.send("/dms")
    alice.expect(r"^\*   bob  last message \d\d:\d\d:\d\d$")
    assert alice.finish() == 0
    assert not any("talking with" in line for line in alice.seen)  # for people only

    bob = PipeClient(chat_server.port, "--user", "bob")
    pipe_clients.append(bob)
    bob.send("login", "password2")
    bob.expect(r"^\* missed while you were away:$")
    first = bob.expect(r"alice → you")
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] alice → you: are you there\?", first)
    bob.expect(r"^\[\d\d:\d\d:\d\d\] alice → you: second line, typed in the conversation$")
    bob.expect(r"^\[\d\d:\d\d:\d\d\] alice → you: /slash too$")
    bob.expect(r"^\* end of missed messages$")
    bob.send("/dm alice", "yes!", "/dms")
    bob.expect(r"^--- conversation with alice: last 3 messages ---$")
    bob.expect(r"^\[\d\d:\d\d:\d\d\] you → alice: yes!$")
    bob.expect(r"^\*   alice  last message \d\d:\d\d:\d\d$")
    bob.send("/history")
    bob.expect(r"^\* no older messages with alice$")
    assert bob.finish() == 0
    assert bob.stderr == ""


def test_terminal_conversation_with_tab_and_paging(
    chat_server: Any, pipe_clients: list[PipeClient]
) -> None:
    """
    On a pseudo-terminal: Tab completes a name seen in the room, /dm
    changes the prompt, a private message arriving does not disturb the
    line being typed, /history pages back through a room.
    """
    carol = PipeClient(chat_server.port)
    pipe_clients.append(carol)
    carol.send("register", "Carol", "password3", "general")
    carol.send(*(f"message {n}" for n in range(55)))
    carol.expect(r"Carol: message 54$")

    child, log = spawn_terminal(chat_server.port)
    try:
        dialog(
            child,
            ("login or register? ", "register"),
            ("username: ", "dave"),
            ("password: ", "Dave-Passw0rd"),
            ("password again: ", "Dave-Passw0rd"),
            ("lobby> ", "general"),
            ("--- history of general: last 50 messages ---", None),
            ("general> ", None),
        )
        keys(
            child,
            ("/who\r", "* in general (2): "),
            ("/dm c\t", "/dm carol "),
            ("\r", "to Carol> "),
            ("hi carol", "to Carol> hi carol"),
        )
        carol.send("/msg dave hello dave")
        child.expect(r"\[\d\d:\d\d:\d\d\] Carol → you: hello dave\r\r?\nto Carol> hi carol")
        child.send("\r")
        child.expect(r"\] you → Carol: hi carol\r")
        keys(
            child,
            ("/room\r", "* lines go to general again"),
            ("/history\r", "--- earlier in general: 5 messages ---"),
            ("", "] Carol: message 4\r"),
            ("/history\r", "* no older messages in general"),
            ("\x04", "* bye"),
        )
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert "Dave-Passw0rd" not in log.getvalue()
    assert carol.finish() == 0
    assert any(re.search(r"dave → you: hi carol$", line) for line in carol.seen)
