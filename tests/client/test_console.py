"""
The session on a terminal, keystroke by keystroke: the hidden password,
the input line under incoming lines, the line editor's keys, history and
Tab completion.
"""

from __future__ import annotations

import pytest

from chat.client import (
    Phase,
)
from tests.client.helpers import (
    DELETE,
    DOWN,
    END,
    HOME,
    LEFT,
    RIGHT,
    STAMP,
    UP,
    Harness,
    assert_editing,
    in_room,
)


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


def test_tab_completes_commands_and_rooms() -> None:
    h = in_room(rooms=("general", "lounge-42"))
    assert_editing(h, ("/jo\t", "/join "), ("lo\t", "/join lounge-42 "))
    h.type("\r")
    assert h.sent() == ["/join lounge-42 "]
    assert_editing(
        h,
        ("/wh\tx", "/who x"),
        # The commands allowed in a room share no more than "/": all are
        # listed.  (/login is not one of them, so /le is /leave.)
        ("\x15/\t", "/"),
    )
    listed = "  ".join(h.client.completions("/"))
    assert "/create  /delete  /deop  /dm  " in listed and "/room  /rooms  " in listed
    assert f"\r\x1b[K{listed}\r\n" in h.output()
    assert_editing(h, ("\x15/le\t", "/leave "))
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


def test_wide_characters_move_the_cursor_by_their_columns(india_time: None) -> None:
    h = in_room()
    h.type("a你好" + LEFT)
    assert h.output() == "a你好\x1b[2D"
    h.type(HOME + END + LEFT + LEFT)
    assert h.output() == "\x1b[3D\x1b[5C\x1b[2D\x1b[2D"
    h.type("x\x7f" + DELETE)
    assert h.output() == "x你好\x1b[4D\x1b[1D\x1b[1P\x1b[2P"
    h.hear(f"MSG general {STAMP} bob :hi")
    assert h.output().endswith("general> a好\x1b[2D")
    h.type("e\u0301" + LEFT + LEFT + RIGHT + RIGHT + "\r")
    # A combining accent takes no column: the cursor does not move over it.
    assert h.output().startswith("e好\x1b[2D\u0301好\x1b[2D\x1b[1D\x1b[1C\r")
    assert h.sent() == ["ae\u0301好"]


def test_nothing_moves_on_screen_while_a_password_is_typed() -> None:
    h = Harness(interactive=True)
    h.hear("HELLO chatroom 1 :Welcome")
    h.type("login\ralice\r")
    assert h.output().endswith("password: ")
    h.type("secret\x7f\x7f" + LEFT + HOME + "\x17" + UP + DELETE + "\t")
    assert h.output() == ""
    h.type("\x15")
    assert h.output() == "\r\x1b[Kpassword: "
    h.type("hunter2\r")
    assert h.sent() == ["/login alice hunter2"]


def test_a_line_wider_than_the_terminal_is_drawn_whole_on_every_edit(india_time: None) -> None:
    h = in_room()
    h.screen.resize(20)
    assert h.output() == "\r\x1b[Kgeneral> "
    h.type("abcdefghij")  # 19 columns: still one row, drawn key by key
    assert h.output() == "abcdefghij"
    h.type("k")  # 20: the cursor wraps to the second row at once
    assert h.output() == "\r\x1b[Kgeneral> abcdefghijk\r\n\r"
    h.type("lmno" + HOME)
    line = "general> abcdefghijklmno"
    assert h.output().endswith(f"\x1b[1A\r\x1b[J{line}\x1b[1A\r\x1b[9C")
    h.hear(f"MSG general {STAMP} bob :hi")
    assert h.output() == f"\r\x1b[J[10:20:05] bob: hi\r\n{line}\x1b[1A\r\x1b[9C"
    h.type(RIGHT * 12 + "X")
    line = "general> abcdefghijklXmno"
    assert h.output().endswith(f"\x1b[1A\r\x1b[J{line}\r\x1b[2C")
    h.type("\r")  # back to one row: the row below is erased too
    assert h.output() == "\x1b[1A\r\x1b[Jgeneral> "
    assert h.sent() == ["abcdefghijklXmno"]


def test_tab_completes_the_names_of_users_seen() -> None:
    h = in_room()
    h.hear(
        "MEMBER general Alice",
        "MEMBER general Bob",
        "END members general",
        f"JOIN general {STAMP} carol",
        f"PART general {STAMP} dave",
        f"MSG general {STAMP} erin :hi",
        f"DM frank {STAMP} frank :psst",
        f"HISTORY @gina {STAMP} alice :old",
        "END history @gina",
        f"CONVERSATION hank {STAMP}",
        "END dms",
        "IGNORED ivan",
        "END ignores",
        "OK ignore judy",
    )
    h.output()
    assert_editing(
        h,
        ("/msg b\t", "/msg bob "),
        ("\x15/dm fr\t", "/dm frank "),
        ("\x15/ignore D\t", "/ignore Dave "),
        ("\x15/unignore iv\t", "/unignore ivan "),
        ("\x15/history @g\t", "/history @gina "),
        ("\x15/history @h\t", "/history @hank "),
        ("\x15/msg j\t", "/msg judy "),
        ("\x15/msg e\t", "/msg erin "),
        ("\x15/msg c\t", "/msg carol "),
        ("\x15/msg a\t", "/msg alice "),
        ("\x15/msg x\t", "/msg x"),
    )
    h.type("\x15/dm bob\r")
    h.output()
    # In the conversation a bare word is a message: nothing to complete.
    assert_editing(h, ("b\t", "b"), ("\x15/ro\t", "/room"), ("\t", "/room"))
    assert "/room  /rooms\r\n" in h.output()
    assert h.screen.prompt == "to Bob> "  # as the server spelled the name


def test_the_prompt_says_where_lines_go(india_time: None) -> None:
    h = in_room()
    h.type("/dm bob\r")
    out = h.output()
    assert "general> /dm bob\r\n" in out
    assert out.endswith("to bob> ")
    h.type("hi")
    h.output()
    h.type("\r")
    assert "hi" not in h.output()  # the server's copy shows it
    h.hear(f"DM bob {STAMP} alice :hi")
    assert h.output() == "\r\x1b[K[10:20:05] you → bob: hi\r\nto bob> "
    h.type("/room\r")
    assert h.output().endswith("* lines go to general again\r\ngeneral> ")
    h.type("/room\r")
    assert h.output().endswith("* lines already go to general\r\ngeneral> ")


def test_a_private_message_is_shown_once_by_the_servers_copy(india_time: None) -> None:
    h = in_room()
    h.type("/msg bob see you")
    h.output()
    h.type("\r")
    assert h.sent() == ["/msg bob see you"]
    assert h.output() == "\r\x1b[Kgeneral> "
    h.hear(f"DM bob {STAMP} alice :see you")
    assert h.output() == "\r\x1b[K[10:20:05] you → bob: see you\r\ngeneral> "
    h.type("/msg bob\r")  # no text: the command stays on screen, with the error
    assert "general> /msg bob\r\n" in h.output()


def test_the_first_private_message_received_says_how_to_answer(india_time: None) -> None:
    h = in_room()
    h.type("/dm dave\r")
    h.hear(f"DM dave {STAMP} dave :in the conversation: no hint", "END history @dave")
    h.type("/room\r")
    h.hear(f"DM bob {STAMP} alice :mine first")
    h.hear(f"DM bob {STAMP} bob :hi", f"DM carol {STAMP} carol :hey")
    out = h.output()
    assert out.count("* answer with /msg") == 1
    assert "* answer with /msg bob <text>, or /dm bob to talk\r\n" in out


def test_the_hint_comes_after_the_messages_missed(india_time: None) -> None:
    h = Harness(interactive=True)
    h.hear("HELLO chatroom 1 :Welcome")
    h.type("login\ralice\rpassword1\r")
    h.hear("OK login alice", "END rooms", f"DM bob {STAMP} bob :1", f"DM carol {STAMP} carol :2")
    assert "answer with" not in h.output()
    h.hear("END unread")
    assert h.output() == (
        "\r\x1b[K* end of missed messages\r\nlobby> "
        "\r\x1b[K* answer with /msg carol <text>, or /dm carol to talk\r\nlobby> "
    )


def test_a_status_line_is_rewritten_in_place_above_the_input_line() -> None:
    h = in_room()
    h.type("draft")
    h.output()
    h.screen.set_status("* lost; reconnecting in 1 s")
    assert h.output() == "\r\x1b[K* lost; reconnecting in 1 s\r\ngeneral> draft"
    # A printed line goes above it; it stays above the input line.
    h.screen.show("* something")
    assert h.output() == (
        "\x1b[1A\r\x1b[J* something\r\n* lost; reconnecting in 1 s\r\ngeneral> draft"
    )
    h.screen.set_status("* lost; reconnecting in 2 s (try 2)")
    assert h.output() == "\x1b[1A\r\x1b[J* lost; reconnecting in 2 s (try 2)\r\ngeneral> draft"
    h.screen.set_status("")
    assert h.output() == "\x1b[1A\r\x1b[Jgeneral> draft"
    h.screen.show("* back")
    assert h.output() == "\r\x1b[K* back\r\ngeneral> draft"


def test_a_status_line_too_long_is_cut_to_one_row() -> None:
    h = in_room()
    h.screen.resize(20)
    h.output()
    h.screen.set_status("* " + "x" * 40)
    assert h.output() == "\r\x1b[K* xxxxxxxxxxxxxxxx\u2026\r\ngeneral> "
