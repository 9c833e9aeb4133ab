"""
The session as a script drives it: server lines into L{ServerProtocol},
input lines into L{ConsoleProtocol}, both on L{StringTransport}.
"""

from __future__ import annotations

import pytest
from twisted.internet.error import ConnectionDone, ConnectionLost

from chat.client import (
    HELP,
    Outcome,
    Phase,
)
from tests.client.helpers import (
    Harness,
)


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
    h.goodbye()
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
    h.goodbye()
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


def test_refused_registration_in_a_script_says_registration() -> None:
    h = Harness()
    h.hear("HELLO chatroom 1 :Welcome")
    h.type("register\nalice\npassword1\npassword1\n")
    h.sent()
    h.hear("ERR rate-limited :your address may register 10 accounts an hour; try again in 60 min")
    [outcome] = h.outcomes
    assert outcome.code == 1
    assert outcome.reason == (
        "registration refused: your address may register 10 accounts an hour; "
        "try again in 60 min (rate-limited)"
    )


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
