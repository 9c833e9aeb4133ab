"""
Session tokens, reconnecting after a drop, and the password change, as the
client's logic does them (L{chat.client.session}), on fake standard I/O, a
fake server connection and the test clock.
"""

from __future__ import annotations

import pytest
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError

from chat.client.session import RECONNECT_CAP, Outcome, Phase, reconnect_delay
from tests.client.helpers import STAMP, Harness

TOKEN = "tok-3b1f0e9a7c"


def chatting(*, jitter: float = 0.0) -> Harness:
    """
    A client on a terminal that may reconnect, logged in as alice, in
    general, holding a token.
    """
    h = Harness(interactive=True, reconnect=True, jitter=jitter)
    h.hear("HELLO chatroom 1 :Welcome")
    h.type("login\ralice\rpassword1\r")
    assert h.sent() == ["/login alice password1"]
    h.hear("OK login alice", "ROOM general 1", "END rooms")
    assert h.sent() == ["/token"]
    h.hear(f"OK token {TOKEN}")
    h.type("general\r")
    assert h.sent() == ["general"]
    h.hear("OK join general", "END history general")
    h.output()
    return h


def test_the_delays_double_from_one_second_up_to_the_cap() -> None:
    delays = [reconnect_delay(attempt, None, 0.0) for attempt in range(8)]
    assert delays == [1, 2, 4, 8, 16, RECONNECT_CAP, RECONNECT_CAP, RECONNECT_CAP]
    # The server's suggestion replaces the first delay only.
    assert reconnect_delay(0, 4, 0.0) == 4
    assert reconnect_delay(1, 4, 0.0) == 2


def test_the_jitter_adds_up_to_a_second_or_half_the_delay() -> None:
    assert reconnect_delay(0, None, 0.5) == 1.5
    assert reconnect_delay(0, 3, 0.5) == 3.75
    assert reconnect_delay(9, None, 0.5) == RECONNECT_CAP * 1.25


def test_the_token_is_asked_for_after_the_login_and_never_shown() -> None:
    h = Harness(interactive=True, reconnect=True)
    h.hear("HELLO chatroom 1 :Welcome")
    h.type("register\ralice\rpassword1\rpassword1\r")
    assert h.sent() == ["/register alice password1"]
    h.hear("OK register alice", "END rooms")
    assert h.sent() == ["/token"]
    h.hear(f"OK token {TOKEN}")
    assert TOKEN not in h.output()
    # Nor when the user asks for it: the client answers itself.
    h.type("/token\r")
    assert h.sent() == []
    assert "keeps its session token to itself" in h.output()


def test_a_script_asks_for_no_token_and_does_not_reconnect() -> None:
    h = Harness(reconnect=True)
    h.logged_in()
    assert h.sent() == []
    h.lose(ConnectionLost())
    assert h.attempts == []
    assert h.outcomes[0].code == 1
    assert h.outcomes[0].reason is not None
    assert h.outcomes[0].reason.startswith("lost the connection to chat.test:5000")


def test_a_restart_reconnects_after_the_suggested_delay_resumes_and_rejoins() -> None:
    h = chatting(jitter=0.5)
    h.hear("RECONNECT 3", "BYE :server shutting down")
    h.lose(ConnectionDone())
    assert h.shown() == [
        "* the server is restarting (server shutting down); reconnecting (exit quits)"
    ]
    assert h.screen.prompt == "[reconnecting in 4 s] general> "
    # 3 s, plus the jitter: half of half the delay (0.75 s).
    h.clock.advance(3.7)
    assert h.attempts == []
    h.clock.advance(0.1)
    assert len(h.attempts) == 1
    assert h.screen.prompt == "[connecting] general> "
    h.accept()
    h.hear("HELLO chatroom 1 :Welcome")
    assert h.sent() == [f"/resume alice {TOKEN}"]
    h.hear("OK login alice", "ROOM general 2", "ROOM lounge 1", "END rooms")
    assert h.sent() == ["/token", "/join general"]
    h.hear(
        "OK token fresh-token",
        "OK join general",
        f"HISTORY general {STAMP} bob :while you were away",
        "END history general",
    )
    shown = h.shown()
    assert shown[0] == "* joined general"
    assert shown[1] == "--- history of general: last 1 message ---"
    assert shown[2].endswith("bob: while you were away")
    assert shown[3] == "--- end of history ---"
    assert len(shown) == 4  # no greeting, login or room list again
    assert h.screen.prompt == "general> "
    assert h.client.phase is Phase.CHAT
    h.type("hello again\r")
    assert h.sent() == ["hello again"]
    # The next drop resumes with the fresh token, after 1 s at most 2.
    h.lose(ConnectionLost())
    h.clock.advance(1.8)
    h.accept()
    h.hear("HELLO chatroom 1 :Welcome")
    assert h.sent() == ["/resume alice fresh-token"]


def test_a_network_drop_backs_off_on_one_status_line() -> None:
    h = chatting()
    h.lose(ConnectionLost())
    assert h.shown() == [
        "* lost the connection to chat.test:5000: connection lost; reconnecting (exit quits)"
    ]
    waits = []
    for _ in range(7):
        waits.append(h.screen.prompt)
        h.clock.advance(RECONNECT_CAP)
        h.refuse(ConnectionRefusedError())
    assert waits[0] == "[reconnecting in 1 s] general> "
    assert waits[1] == "[refused; reconnecting in 2 s] general> "
    assert [wait.split("reconnecting in ")[1].split(" ")[0] for wait in waits] == [
        "1",
        "2",
        "4",
        "8",
        "16",
        "30",
        "30",
    ]
    # The attempts changed the prompt, and printed nothing.
    assert h.shown() == []
    # A connection that closes before its greeting is one more attempt.
    h.clock.advance(RECONNECT_CAP)
    h.accept()
    h.lose(ConnectionDone())
    assert h.screen.prompt == "[closed; reconnecting in 30 s] general> "
    h.clock.advance(RECONNECT_CAP)
    h.accept()
    h.hear("HELLO chatroom 1 :Welcome")
    h.hear("OK login alice", "END rooms")
    assert h.sent() == [f"/resume alice {TOKEN}", "/token", "/join general"]
    assert h.shown() == []


def test_a_silent_server_is_dropped_and_tried_again() -> None:
    h = chatting()
    h.lose(ConnectionLost())
    h.clock.advance(1)
    h.accept()
    h.clock.advance(10)
    assert h.wire.disconnecting
    h.lose(ConnectionDone())
    assert h.screen.prompt == "[no greeting; reconnecting in 2 s] general> "


def test_lines_typed_while_disconnected_are_not_sent() -> None:
    h = chatting()
    h.lose(ConnectionLost())
    h.output()
    h.type("are you there?\r")
    assert "! not connected: that line was not sent (Up brings it back)" in h.shown()
    h.clock.advance(1)
    h.accept()
    h.hear("HELLO chatroom 1 :Welcome", "OK login alice", "END rooms")
    assert h.sent() == [f"/resume alice {TOKEN}", "/token", "/join general"]
    # Up brings it back to send now.
    h.type("\x1b[A\r")
    assert h.sent() == ["are you there?"]


def test_exit_while_disconnected_stops_trying() -> None:
    h = chatting()
    h.lose(ConnectionLost())
    h.type("exit\r")
    assert h.outcomes == [Outcome(0)]
    assert h.clock.getDelayedCalls() == []


def test_a_connection_made_after_exit_is_dropped() -> None:
    h = chatting()
    h.lose(ConnectionLost())
    h.clock.advance(1)
    h.type("exit\r")
    assert h.outcomes == [Outcome(0)]
    h.accept()
    assert h.wire.disconnecting
    assert h.clock.getDelayedCalls() == []


def test_a_goodbye_without_reconnect_ends_the_session() -> None:
    h = chatting()
    h.hear("BYE :idle for too long")
    h.lose(ConnectionDone())
    assert h.attempts == [] and h.clock.getDelayedCalls() == []
    assert h.outcomes == [Outcome(1, "the server ended the session: idle for too long")]


def test_no_reconnection_after_quit() -> None:
    h = chatting()
    h.type("/quit\r")
    h.hear("RECONNECT 2")
    h.goodbye()
    assert h.outcomes == [Outcome(0)]


def test_a_refused_token_asks_for_the_password_then_rejoins() -> None:
    h = chatting()
    h.lose(ConnectionLost())
    h.clock.advance(1)
    h.accept()
    h.hear("HELLO chatroom 1 :Welcome")
    h.sent()
    h.output()
    h.hear("ERR bad-credentials :wrong name or token")
    shown = h.shown()
    assert shown[0] == "! wrong name or token (bad-credentials)"
    assert "could not resume the session" in shown[1]
    assert h.screen.prompt == "password: "
    assert not h.screen.echo
    h.type("password2\r")
    assert h.sent() == ["/login alice password2"]
    h.hear("OK login alice", "ROOM general 1", "END rooms")
    assert h.sent() == ["/token", "/join general"]
    assert "password2" not in h.output()


def test_a_locked_account_ends_the_session_on_resuming() -> None:
    h = chatting()
    h.lose(ConnectionLost())
    h.clock.advance(1)
    h.accept()
    h.hear("HELLO chatroom 1 :Welcome", "ERR locked :this account is locked")
    assert h.outcomes == [Outcome(1, "login refused: this account is locked (locked)")]


def test_the_password_change_asks_both_without_echo() -> None:
    h = chatting()
    h.type("/password\r")
    assert h.sent() == ["/password"]
    assert not h.screen.echo
    h.hear("PROMPT password :current password:")
    assert h.screen.prompt == "current password: "
    h.type("old secret\r")
    assert h.sent() == ["old secret"]
    h.hear("PROMPT password :new password:")
    assert (h.screen.prompt, h.screen.echo) == ("new password: ", False)
    h.type("new secret\r")
    assert (h.screen.prompt, h.screen.echo) == ("new password again: ", False)
    h.type("new secreT\r")
    assert h.sent() == []
    assert "! the two passwords differ; try again" in h.shown()
    h.type("new secret\rnew secret\r")
    assert h.sent() == ["new secret"]
    h.hear("OK password")
    assert h.sent() == ["/token"]
    out = h.output()
    assert "* password changed" in out
    assert "secret" not in out
    assert "the server asks" not in out
    assert h.screen.prompt == "general> " and h.screen.echo
    assert b"secret" not in b"".join(h.screen.historyLines)


def test_a_wrong_current_password_ends_the_dialog_and_sends_nothing_more() -> None:
    h = chatting()
    h.type("/password\r")
    h.hear("PROMPT password :current password:")
    h.type("wrong\r")
    h.sent()
    # Typed blind before the server's answer: perhaps the new password.
    h.type("new secret\r")
    h.hear("ERR bad-credentials :wrong password")
    assert h.sent() == []
    shown = h.shown()
    assert "! wrong password (bad-credentials)" in shown
    assert "! the lines typed during the password change were not sent" in shown
    assert h.screen.prompt == "general> " and h.screen.echo


@pytest.mark.parametrize("interactive", [True, False])
def test_a_weak_new_password_is_refused(interactive: bool) -> None:
    h = chatting() if interactive else Harness()
    if not interactive:
        h.logged_in()
    end = "\r" if interactive else "\n"
    h.type(f"/password{end}old secret{end}")
    h.hear("PROMPT password :current password:")
    h.hear("PROMPT password :new password:")
    # Asked twice on a terminal, once in a script (as at registration).
    h.type(f"abc{end}" * (2 if interactive else 1))
    assert h.sent() == ["/password", "old secret", "abc"]
    h.hear("ERR weak-password :at least 8 characters")
    assert "at least 8 characters (weak-password)" in h.output()
    assert h.client.phase is Phase.CHAT


def test_logout_all_is_readable_and_asks_for_a_new_token() -> None:
    h = chatting()
    h.type("/logout-all\r")
    assert h.sent() == ["/logout-all"]
    h.hear("OK logout-all")
    assert "* every session token of yours is revoked" in h.shown()
    assert h.sent() == ["/token"]


def test_a_script_ending_in_the_password_dialog_quits() -> None:
    h = Harness()
    h.logged_in()
    h.type("/password\n")
    h.hear("PROMPT password :current password:")
    h.console.readConnectionLost()
    assert h.sent() == ["/password", "/quit"]
    h.goodbye()
    assert h.outcomes == [Outcome(0)]
