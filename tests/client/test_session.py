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
from chat.client.session import HISTORY_WAIT
from tests.client.helpers import (
    STAMP,
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


def test_dm_sends_typed_lines_to_one_user_until_room() -> None:
    h = Harness()
    h.logged_in()
    h.hear("OK join general", "END history general")
    h.output()
    h.type("/dm bob\nhello bob\n//slash\n/who\nexit now\n")
    assert h.sent() == [
        "/history @bob",
        "/msg bob hello bob",
        "/msg bob /slash",
        "/who",
        "/msg bob exit now",
    ]
    h.type("/room\nhello room\n/room\n")
    assert h.sent() == ["hello room"]
    # What the client's own commands did is told to people only: in a
    # script it would come before the replies to the lines before.
    assert h.lines() == []


def test_dm_in_the_lobby_and_join_ends_it() -> None:
    h = Harness()
    h.logged_in()
    h.type("/dm carol\ngeneral\ncreate lounge\n/join general\ngeneral\n")
    assert h.sent() == [
        "/history @carol",
        "/msg carol general",
        "/msg carol create lounge",
        "/join general",
        "general",
    ]
    h.type("/DM carol\n/create lounge\nhi\n")
    assert h.sent() == ["/history @carol", "/create lounge", "hi"]


def test_dm_takes_the_spelling_the_server_answers() -> None:
    h = Harness(interactive=True)
    h.logged_in()
    h.type("/dm BOB\r")
    assert h.sent() == ["/history @BOB"]
    assert h.output().endswith("to BOB> ")
    h.hear(f"HISTORY @Bob {STAMP} Bob :hi", "END history @Bob")
    assert h.output().endswith("to Bob> ")
    h.type("hi\r")
    assert h.sent() == ["/msg Bob hi"]
    h.type("/room\r")
    assert h.output().endswith("lobby> ")


@pytest.mark.parametrize("code", ["no-such-user", "bad-name"])
def test_dm_to_nobody_goes_back_to_the_room(code: str) -> None:
    h = Harness(interactive=True)
    h.logged_in()
    h.hear("OK join general", "END history general")
    h.type("/dm nobody\r")
    h.output()
    h.hear("ERR rate-limited :slow down")
    assert h.output().endswith("to nobody> ")
    h.hear(f"ERR {code} :no user named nobody")
    out = h.output()
    assert "* lines go to general again" in out
    assert out.endswith("general> ")
    h.type("hi\r")
    assert h.sent() == ["/history @nobody", "hi"]


def test_dm_without_a_user_is_refused_here() -> None:
    h = Harness()
    h.logged_in()
    h.type("/dm\n/dm bob extra words\n/dm b@d\n/room general\nstill lobby\n")
    assert h.sent() == ["still lobby"]
    assert h.lines() == [
        "! usage: /dm <user>, then type to talk with them; /room goes back",
        "! usage: /dm <user>, then type to talk with them; /room goes back",
        "! usage: /dm <user>, then type to talk with them; /room goes back",
        "! /room takes no argument; /join <room> goes to another room",
    ]


def test_history_alone_pages_back_from_the_oldest_message_seen() -> None:
    h = Harness()
    h.logged_in()
    h.type("/history\n")
    assert h.sent() == []
    assert h.lines() == ["! in the lobby, say whose history: /history <room> or /history @<user>"]
    h.hear(
        "OK join general",
        "HISTORY general 2026-11-25T04:40:00.000Z bob :b",
        "HISTORY general 2026-11-25T04:41:00.000Z carol :c",
        "END history general",
        "MSG general 2026-11-25T04:39:00.000Z dave :clock skew",
        "DM erin 2026-11-25T04:00:00.000Z erin :elsewhere",
    )
    h.type("/history\n")
    assert h.sent() == ["/history general 2026-11-25T04:39:00.000Z"]
    h.hear("HISTORY general 2026-11-25T03:00:00.000Z bob :a", "END history general")
    h.type("/history\n")
    assert h.sent() == ["/history general 2026-11-25T03:00:00.000Z"]
    # With a target, as typed; its page counts too.
    h.type("/history lounge 20\n/history @erin 2026-11-25T05:00:00.000Z 5\n")
    assert h.sent() == ["/history lounge 20", "/history @erin 2026-11-25T05:00:00.000Z 5"]
    h.hear("HISTORY lounge 2026-11-25T02:00:00.000Z bob :x", "END history lounge")
    h.type("/join lounge\n")
    h.hear("OK join lounge", "END history lounge")
    # Joining showed the room's end again: paging starts there, from now.
    h.type("/history\n")
    assert h.sent() == ["/join lounge", "/history lounge"]


def test_history_alone_in_a_conversation_pages_the_conversation(india_time: None) -> None:
    h = Harness()
    h.logged_in()
    h.hear(
        "OK join general",
        "HISTORY general 2026-11-25T04:40:00.000Z bob :b",
        "END history general",
        "DM bob 2026-11-25T04:00:00.000Z bob :seen before /dm",
    )
    h.type("/dm bob\n/history\n")
    # The page starts before the conversation's opening: it waits for it.
    assert h.sent() == ["/history @bob"]
    h.hear(
        "DM bob 2026-11-25T04:45:00.000Z bob :live",
        "HISTORY @bob 2026-11-25T04:30:00.000Z alice :mine",
        "END history @bob",
    )
    assert h.sent() == ["/history @bob 2026-11-25T04:30:00.000Z"]
    h.hear("END history @bob")
    assert h.lines()[-5:] == [
        "[10:15:00] bob → you: live",
        "--- conversation with bob: last 1 message ---",
        "[10:00:00] you → bob: mine",
        "--- end of history ---",
        "* no older messages with bob",
    ]


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("general", ["OK join general", "END history general"]),
        ("create lounge", ["OK create lounge", "OK join lounge", "END history lounge"]),
        ("/join Lounge", ["OK join lounge", "END history lounge"]),
    ],
)
def test_a_script_pages_back_once_the_room_is_joined(typed: str, answer: list[str]) -> None:
    h = Harness()
    h.logged_in()
    h.type(f"{typed}\n/history\nafter\n")
    assert h.sent() == [typed]
    h.hear(*answer[:-1])
    assert h.sent() == []
    h.hear(answer[-1])
    room = answer[-1].split()[-1]
    assert h.sent() == [f"/history {room}", "after"]


def test_a_script_waiting_to_page_back_goes_on_after_an_error_or_a_while() -> None:
    h = Harness()
    h.logged_in()
    h.type("nowhere\n/history\n")
    assert h.sent() == ["nowhere"]
    h.hear("ERR no-such-room :no room named nowhere")
    assert h.sent() == []
    assert h.lines()[-1] == "! in the lobby, say whose history: /history <room> or /history @<user>"
    # A join followed by a message: the message is not a second join.
    h.type("/join general\nhello\n/history\n")
    assert h.sent() == ["/join general", "hello"]
    h.clock.advance(HISTORY_WAIT - 0.1)
    assert h.sent() == []
    h.hear("OK join general", "HISTORY general 2026-11-25T04:40:00.000Z bob :b")
    h.clock.advance(0.1)
    # Its END never came: the page starts at what was seen.
    assert h.sent() == ["/history general 2026-11-25T04:40:00.000Z"]


# --- moderation: the server moves us, or refuses us -------------------


def _in_lounge(*, interactive: bool = True) -> Harness:
    h = Harness(interactive=interactive)
    h.logged_in()
    h.hear("OK join Lounge", "END history Lounge", f"TOPIC Lounge {STAMP} bob :be nice")
    h.output()
    return h


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        (f"KICK Lounge {STAMP} bob alice :spam", "* bob kicked you out of Lounge (spam)"),
        (f"KICK Lounge {STAMP} bob ALICE", "* bob kicked you out of Lounge"),
        (f"BAN Lounge {STAMP} bob alice :spam", "* bob banned you from Lounge (spam)"),
        (f"DROPPED Lounge {STAMP} admin :closed", "* admin dropped the room Lounge (closed)"),
    ],
)
def test_sent_out_of_the_room_puts_the_client_in_the_lobby(line: str, shown: str) -> None:
    h = _in_lounge()
    assert h.renderer.room == "Lounge"
    assert "/kick" in h.client.completions("/k")
    h.hear(line)
    out = h.output()
    assert shown in out
    assert out.endswith("lobby> ")
    assert h.renderer.room is None
    # Tab and bare words are the lobby's now: a room name joins.
    assert h.client.completions("/k") == []
    assert h.client.completions("gen") == ["general"]
    h.type("general\r")
    assert h.sent() == ["general"]
    h.hear("OK join general", "END history general")
    assert h.output().endswith("general> ")


def test_a_dropped_room_is_no_longer_completed() -> None:
    h = _in_lounge()
    h.hear("ROOM general 1", "ROOM Lounge 2", "ROOM games 0", "END rooms")
    assert h.client.completions("/join ") == ["Lounge", "games", "general"]
    # Dropped elsewhere (an admin's own answer): where we are stays.
    h.hear(f"DROPPED games {STAMP} admin")
    assert h.client.completions("/join ") == ["Lounge", "general"]
    assert h.renderer.room == "Lounge"
    assert h.output().endswith("Lounge> ")
    h.hear(f"DROPPED Lounge {STAMP} admin")
    assert h.client.completions("/drop ") == ["general"]
    assert h.renderer.room is None


@pytest.mark.parametrize(
    "line",
    [
        f"KICK Lounge {STAMP} bob mallory :spam",
        f"BAN Lounge {STAMP} bob mallory",
        f"BAN general {STAMP} bob alice",  # from a room we are not in
        f"MUTE Lounge {STAMP} bob alice",
        f"DROPPED general {STAMP} admin",
    ],
)
def test_others_sent_out_or_we_muted_we_stay(line: str) -> None:
    h = _in_lounge()
    h.hear(line)
    assert h.renderer.room == "Lounge"
    assert h.output().endswith("Lounge> ")
    h.type("still here\r")
    assert h.sent() == ["still here"]


def test_kicked_in_a_script_the_next_lines_are_the_lobbys() -> None:
    h = _in_lounge(interactive=False)
    h.hear(f"KICK Lounge {STAMP} bob alice :spam")
    h.type("/rooms\ngeneral\nhello\n")
    assert h.sent() == ["/rooms", "general", "hello"]
    # The lines show what the server said, as every other line does in a
    # script.
    assert h.lines() == ["* bob kicked you out of Lounge (spam)"]
    assert h.renderer.room is None
    h.type("/quit\n")
    h.goodbye()
    assert h.outcomes == [Outcome(0)]


def test_kicked_while_talking_the_conversation_goes_on() -> None:
    h = _in_lounge()
    h.type("/dm bob\r")
    h.hear("END history @bob")
    h.hear(f"KICK Lounge {STAMP} bob alice")
    assert h.output().endswith("to bob> ")
    h.type("why\r/room\r")
    assert h.sent() == ["/history @bob", "/msg bob why"]
    out = h.output()
    assert "* lines go to the lobby again" in out
    assert out.endswith("lobby> ")


def test_moderation_lines_teach_tab_their_names() -> None:
    h = _in_lounge()
    h.hear(
        f"KICK Lounge {STAMP} Bob Mallory :spam",
        "OPERATOR Lounge Carol owner",
        "END ops Lounge",
        f"BANNED Lounge eve {STAMP} Dave",
        "END bans Lounge",
        f"AUDIT {STAMP} root lock - Zed",
        f"AUDIT {STAMP} root wall - -",
        "END audit",
        f"NOTICE {STAMP} Root :hi",
        "OK lock yvonne",
    )
    assert set(h.client.users.values()) >= {
        "Bob",
        "Mallory",
        "Carol",
        "eve",
        "Dave",
        "Zed",
        "Root",
        "yvonne",
    }
    assert "-" not in h.client.users
    assert h.client.completions("/ban m") == ["mallory"]
    assert h.client.completions("/unlock y") == ["yvonne"]


@pytest.mark.parametrize("interactive", [False, True])
def test_a_locked_account_ends_the_login_as_a_refusal(interactive: bool) -> None:
    h = Harness(interactive=interactive)
    h.hear("HELLO chatroom 1 :Welcome")
    end = "\r" if interactive else "\n"
    h.type(end.join(["login", "mallory", "password1", "general", ""]))
    assert h.sent() == ["/login mallory password1"]
    h.hear("ERR locked :this account is locked")
    # No asking again on a terminal: the password was right, and would be
    # refused again.
    assert h.outcomes == [Outcome(1, "login refused: this account is locked (locked)")]
    assert h.wire.disconnecting
    assert h.sent() == []
    assert "! this account is locked (locked)" in h.output()


def test_a_locked_account_is_told_why_at_the_end() -> None:
    h = _in_lounge(interactive=False)
    h.hear("BYE :your account is locked")
    h.lose(ConnectionDone())
    assert h.outcomes == [Outcome(1, "the server ended the session: your account is locked")]


def test_delete_takes_the_time_shown(india_time: None) -> None:
    h = _in_lounge()
    second = STAMP.replace(".123Z", ".456Z")
    h.hear(
        f"MSG Lounge {STAMP} mallory :buy now",
        f"MSG Lounge {second} mallory :cheap",
        "MSG Lounge 2026-11-25T04:50:07.000Z mallory :really",
        "MSG general 2026-11-25T04:50:09.000Z bob :elsewhere",
    )
    h.output()
    # The time as shown: the one message shown then, by its stamp.
    h.type("/delete 10:20:07\r")
    assert h.sent() == ["/delete 2026-11-25T04:50:07.000Z"]
    # Two messages in that second: the client says which, and sends nothing.
    h.type("/delete 10:20:05\r")
    assert h.sent() == []
    assert (
        f"! 2 messages at 10:20:05: /delete one of {STAMP} (mallory), {second} (mallory)"
        in h.output()
    )
    h.type(f"/delete {second}\r")
    assert h.sent() == [f"/delete {second}"]
    h.hear(f"DELETE Lounge {second} bob")
    assert "* bob deleted a message (10:20:05)" in h.output()
    # Once deleted, the other one of that second is the only one.
    h.type("/delete 10:20:05\r")
    assert h.sent() == [f"/delete {STAMP}"]
    # Only this room's messages; nothing shown then: said, not sent.
    h.type("/delete 10:20:09\r")
    assert h.sent() == []
    assert "! no message shown at 10:20:09 in Lounge" in h.output()
    # Anything else goes to the server, which judges it.
    h.type("/delete soon\r/delete\r")
    assert h.sent() == ["/delete soon", "/delete"]


def test_delete_of_an_older_message_takes_its_date_too(india_time: None) -> None:
    h = Harness()
    h.logged_in()
    h.hear(
        "OK join Lounge",
        "HISTORY Lounge 2026-11-24T04:50:05.000Z mallory :yesterday",
        "END history Lounge",
    )
    h.output()
    h.type("/delete 10:20:05\n/delete 2026-11-24 10:20:05\n")
    assert h.sent() == ["/delete 2026-11-24T04:50:05.000Z"]
    assert h.lines() == [
        "! no message shown at 10:20:05 in Lounge; /delete takes a time shown "
        "or a timestamp like 2026-12-02T14:02:05.123Z"
    ]
