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
    h.hear(
        f"MSG general {STAMP[:-5]}1.000Z bob :before the restart",
        "RECONNECT 3",
        "BYE :server shutting down",
    )
    h.output()
    h.lose(ConnectionDone())
    # 3 s, plus the jitter: half of half the delay (0.75 s).
    assert h.client.status == "server shutting down; reconnecting in 4 s"
    # On a line of its own above the input line, printed nowhere else.
    out = h.output()
    assert out.endswith("* server shutting down; reconnecting in 4 s\r\ngeneral> ")
    assert "bye" not in out
    h.clock.advance(3.7)
    assert h.attempts == []
    h.clock.advance(0.1)
    assert len(h.attempts) == 1
    assert h.client.status == "server shutting down; connecting"
    h.accept()
    h.hear("HELLO chatroom 1 :Welcome")
    assert h.sent() == [f"/resume alice {TOKEN}"]
    h.output()
    h.hear("OK login alice", "ROOM general 2", "ROOM lounge 1", "END rooms")
    assert h.sent() == ["/token", "/join general"]
    assert h.client.status == ""
    h.hear(
        "OK token fresh-token",
        "OK join general",
        f"HISTORY general {STAMP[:-5]}1.000Z bob :before the restart",
        f"HISTORY general {STAMP[:-5]}9.000Z bob :while you were away",
        "END history general",
    )
    shown = h.shown()
    # The status line erased, then no greeting, login or room list again:
    # only what was missed.
    assert shown[0:2] == ["* reconnected as alice", "* joined general"]
    assert shown[2] == "--- missed in general: 1 message ---"
    assert shown[3].endswith("bob: while you were away")
    assert shown[4:] == ["--- end of history ---"]
    assert h.screen.prompt == "general> "
    assert h.client.phase is Phase.CHAT
    h.type("hello again\r")
    assert h.sent() == ["hello again"]
    # The next drop resumes with the fresh token, after 1 s at most 2.
    h.lose(ConnectionLost())
    assert h.client.status == "connection lost; reconnecting in 2 s"
    h.clock.advance(1.8)
    h.accept()
    h.hear("HELLO chatroom 1 :Welcome")
    assert h.sent() == ["/resume alice fresh-token"]
    h.hear("OK login alice", "END rooms", "OK join general", "END history general")
    assert "* nothing new in general" in h.shown()


def test_a_network_drop_backs_off_on_one_status_line() -> None:
    h = chatting()
    h.lose(ConnectionLost())
    assert h.client.status == "connection lost; reconnecting in 1 s"
    h.output()
    statuses = []
    for _ in range(7):
        h.clock.advance(RECONNECT_CAP)
        h.refuse(ConnectionRefusedError())
        statuses.append(h.client.status)
    assert statuses == [
        f"connection lost (connection refused); reconnecting in {delay} s (try {n})"
        for n, delay in enumerate([2, 4, 8, 16, 30, 30, 30], start=2)
    ]
    # Each rewrote the status line in place (up to it, erased to the end,
    # drawn again with the input line): no line was added.
    out = h.output()
    assert "\x1b[1A\r\x1b[J* connection lost (connection refused)" in out
    assert "\r\n" not in out.replace("\r\ngeneral> ", "")
    # A connection that closes before its greeting is one more attempt.
    h.clock.advance(RECONNECT_CAP)
    h.accept()
    h.lose(ConnectionDone())
    assert h.client.status == "connection lost (closed); reconnecting in 30 s (try 9)"
    h.clock.advance(RECONNECT_CAP)
    h.accept()
    h.hear("HELLO chatroom 1 :Welcome")
    h.hear("OK login alice", "END rooms")
    assert h.sent() == [f"/resume alice {TOKEN}", "/token", "/join general"]
    # And the count starts again.
    h.lose(ConnectionLost())
    assert h.client.status == "connection lost; reconnecting in 1 s"


def test_a_server_not_ready_yet_is_tried_again() -> None:
    h = chatting()
    h.lose(ConnectionLost())
    h.clock.advance(1)
    h.accept()
    h.hear("HELLO chatroom 1 :Welcome", "ERR unavailable :cannot check accounts right now")
    assert h.wire.disconnecting
    h.lose(ConnectionDone())
    assert h.client.status == "connection lost (unavailable); reconnecting in 2 s (try 2)"
    assert h.client.phase is Phase.RECONNECTING


def test_a_silent_server_is_dropped_and_tried_again() -> None:
    h = chatting()
    h.lose(ConnectionLost())
    h.clock.advance(1)
    h.accept()
    h.clock.advance(10)
    assert h.wire.disconnecting
    h.lose(ConnectionDone())
    assert h.client.status == "connection lost (no greeting); reconnecting in 2 s (try 2)"


def test_enter_while_disconnected_leaves_the_line_where_it_is() -> None:
    h = chatting()
    h.lose(ConnectionLost())
    h.output()
    h.type("are you there?\r")
    assert "! not connected: Enter sends the line once the client is back" in h.output()
    assert h.screen.text == "are you there?"
    h.type("\r")
    assert "not connected" not in h.output()  # said once
    h.clock.advance(1)
    h.accept()
    h.hear("HELLO chatroom 1 :Welcome", "OK login alice", "END rooms")
    assert h.sent() == [f"/resume alice {TOKEN}", "/token", "/join general"]
    h.type("\r")
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
    assert h.client.status == ""
    assert "! could not resume the session: wrong name or token (bad-credentials)" in h.shown()
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


def test_the_password_change_asks_everything_blind_then_answers_the_server() -> None:
    h = chatting()
    h.type("/password\r")
    assert h.sent() == []
    assert (h.screen.prompt, h.screen.echo) == ("current password: ", False)
    h.type("old secret\r")
    assert (h.screen.prompt, h.screen.echo) == ("new password: ", False)
    h.type("new secret\r")
    assert (h.screen.prompt, h.screen.echo) == ("new password again: ", False)
    h.type("new secret\r")
    assert h.sent() == ["/password"]
    # Typed meanwhile: held, as the server would take it for a password.
    h.type("hello\r")
    assert h.sent() == []
    h.hear("PROMPT password :current password:")
    assert h.sent() == ["old secret"]
    h.hear("PROMPT password :new password:")
    assert h.sent() == ["new secret"]
    h.hear("OK password")
    assert h.sent() == ["/token", "hello"]
    out = h.output()
    assert "* password changed" in out
    assert "secret" not in out
    assert "the server asks" not in out
    assert h.screen.prompt == "general> " and h.screen.echo
    assert b"secret" not in b"".join(h.screen.historyLines)


def test_new_passwords_that_differ_send_nothing() -> None:
    h = chatting()
    h.type("/password\rold secret\rnew secret\rnew secreT\r")
    assert h.sent() == []
    assert "! the new passwords differ; nothing changed" in h.shown()
    assert h.screen.prompt == "general> "


def test_an_empty_current_password_cancels() -> None:
    h = chatting()
    h.type("/password\r\r")
    assert h.sent() == []
    assert "* password change cancelled" in h.shown()


def test_a_wrong_current_password_ends_the_dialog() -> None:
    h = chatting()
    h.type("/password\rwrong\rnew secret\rnew secret\r")
    assert h.sent() == ["/password"]
    h.hear("PROMPT password :current password:")
    assert h.sent() == ["wrong"]
    h.type("hello\r")
    h.hear("ERR bad-credentials :wrong password; it is unchanged")
    # The new password never goes out; the line held goes now.
    assert h.sent() == ["hello"]
    assert "! wrong password; it is unchanged (bad-credentials)" in h.shown()
    assert h.screen.prompt == "general> " and h.screen.echo


@pytest.mark.parametrize("interactive", [True, False])
def test_a_weak_new_password_is_refused(interactive: bool) -> None:
    h = chatting() if interactive else Harness()
    if not interactive:
        h.logged_in()
    end = "\r" if interactive else "\n"
    # Asked twice on a terminal, once in a script (as at registration).
    h.type(f"/password{end}old secret{end}" + f"abc{end}" * (2 if interactive else 1))
    assert h.sent() == ["/password"]
    h.hear("PROMPT password :current password:", "PROMPT password :new password:")
    assert h.sent() == ["old secret", "abc"]
    h.hear("ERR weak-password :passwords are 8 to 128 characters")
    assert "passwords are 8 to 128 characters (weak-password)" in h.output()
    assert h.client.phase is Phase.CHAT


def test_logout_all_is_readable_and_asks_for_a_new_token() -> None:
    h = chatting()
    h.type("/logout-all\r")
    assert h.sent() == ["/logout-all"]
    h.hear("OK logout-all")
    assert "* all session tokens revoked; this client keeps a new one" in h.shown()
    assert h.sent() == ["/token"]


def test_a_script_ending_in_the_password_dialog_quits_without_sending_it() -> None:
    h = Harness()
    h.logged_in()
    h.type("/password\n")
    h.console.readConnectionLost()
    assert h.sent() == ["/quit"]
    h.goodbye()
    assert h.outcomes == [Outcome(0)]


def test_private_messages_missed_while_away_are_shown_on_resuming() -> None:
    h = chatting()
    h.lose(ConnectionLost())
    h.clock.advance(1)
    h.accept()
    h.hear(
        "HELLO chatroom 1 :Welcome",
        "OK login alice",
        "ROOM general 1",
        "END rooms",
        f"DM alice {STAMP} bob :are you back?",
        "END unread",
    )
    shown = h.shown()
    assert "* missed while you were away:" in shown
    assert any(line.endswith("bob \u2192 you: are you back?") for line in shown)
