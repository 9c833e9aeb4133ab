"""
Server lines as a person reads them, and when there is colour.
"""

from __future__ import annotations

import os
import re

import pytest

from chat.client import (
    MISSED_WINDOW,
    Renderer,
    Style,
    use_colour,
)
from chat.lines import format_timestamp, parse_line
from tests.client.helpers import (
    NOW,
    STAMP,
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


def test_unknown_tags_are_ignored_and_short_lines_shown_marked() -> None:
    # Unknown tags and blocks: a feature of a later version, ignored as
    # the protocol says; a known tag with too few arguments is shown.
    assert render("WHAT is this :thing", "END whats", "MSG general", "END") == [
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


def test_private_messages_say_who_to_whom(india_time: None) -> None:
    assert render(
        f"DM bob {STAMP} bob :hi alice",
        f"DM bob {STAMP} alice :hi bob",
        f"DM alice {STAMP} alice :a note to self",
        f"DM Bob {STAMP} ALICE :any case",
        me="alice",
    ) == [
        "[10:20:05] bob → you: hi alice",
        "[10:20:05] you → bob: hi bob",
        "[10:20:05] you → you: a note to self",
        "[10:20:05] you → Bob: any case",
    ]


def test_private_messages_stand_out_in_colour() -> None:
    [theirs, mine] = render(
        f"DM bob {STAMP} bob :\x1b[2Jhi", f"DM bob {STAMP} alice :yo", colour=True, me="alice"
    )
    assert "\x1b[1;35mbob → you\x1b[0m: ^[[2Jhi" in theirs
    assert mine.endswith("\x1b[1;35myou → bob\x1b[0m: \x1b[1myo\x1b[0m")
    [room] = render(f"MSG general {STAMP} bob :hi", colour=True, me="alice")
    assert "→" not in room


def test_messages_missed_while_away_are_announced(india_time: None) -> None:
    assert render(
        "OK login alice",
        "ROOM general 1",
        "END rooms",
        "INFO :250 older unread messages: /history @bob",
        f"DM bob {STAMP} bob :while you were out",
        f"DM carol {STAMP} carol :me too",
        "END unread",
        f"DM bob {STAMP} bob :now live",
        me="alice",
    ) == [
        "* logged in as alice",
        "* rooms (1):",
        "*   general  1 person",
        "* missed while you were away:",
        "* 250 older unread messages: /history @bob",
        "[10:20:05] bob → you: while you were out",
        "[10:20:05] carol → you: me too",
        "* end of missed messages",
        "[10:20:05] bob → you: now live",
    ]


@pytest.mark.parametrize(
    "first",
    [
        # Your own message, sent right after the login: live.
        f"DM bob {STAMP} alice :sent at once",
        # Anything else first: nothing was missed.
        f"JOIN general {STAMP} bob",
    ],
)
def test_no_missed_heading_when_nothing_was_missed(first: str) -> None:
    lines = render("OK register alice", "END rooms", first, f"DM bob {STAMP} bob :live", me="alice")
    assert not any("missed" in line for line in lines)
    # A room list asked for later is not a login's.
    lines = render("END rooms", f"DM bob {STAMP} bob :live", me="alice")
    assert not any("missed" in line for line in lines)


def test_a_private_message_a_while_after_the_login_is_live() -> None:
    now = [NOW]
    renderer = Renderer(Style(False), lambda: now[0])
    renderer.me = "alice"

    def shown(line: str) -> list[str]:
        return [text.split("]")[-1] for text in renderer.render(parse_line(line))]

    shown("OK login alice")
    shown("END rooms")
    now[0] += MISSED_WINDOW + 0.001
    assert shown(f"DM bob {STAMP} bob :live") == [" bob → you: live"]
    # Within the window it is a missed one, and the heading stays for all.
    shown("OK login alice")
    shown("END rooms")
    now[0] += MISSED_WINDOW
    assert shown(f"DM bob {STAMP} bob :1") == ["* missed while you were away:", " bob → you: 1"]
    now[0] += 60
    assert shown(f"DM bob {STAMP} bob :2") == [" bob → you: 2"]
    assert shown("END unread") == ["* end of missed messages"]


def test_history_pages_are_framed_apart_from_the_history_on_joining(india_time: None) -> None:
    old = format_timestamp(NOW - 86400)
    assert render(
        f"HISTORY general {old} bob :older",
        f"HISTORY general {STAMP} alice :old",
        "END history general",
        "END history general",
        f"HISTORY lounge {STAMP} carol :elsewhere",
        "END history lounge",
        me="alice",
    ) == [
        "--- earlier in general: 2 messages ---",
        "[2026-11-24 10:20:05] bob: older",
        "[10:20:05] alice: old",
        "--- end of history ---",
        "* no older messages in general",
        "--- earlier in lounge: 1 message ---",
        "[10:20:05] carol: elsewhere",
        "--- end of history ---",
    ]


def test_conversation_history_on_opening_and_by_pages(india_time: None) -> None:
    renderer = Renderer(Style(False), lambda: NOW)
    renderer.me = "alice"
    renderer.expect_opening("@BOB")
    lines = [
        f"HISTORY @Bob {STAMP} Bob :hi",
        f"HISTORY @Bob {STAMP} alice :hello",
        "END history @Bob",
        f"HISTORY @Bob {STAMP} Bob :before",
        "END history @Bob",
        "END history @Bob",
        "END history @carol",
    ]
    out: list[str] = []
    for line in lines:
        out += renderer.render(parse_line(line))
    renderer.expect_opening("@carol")
    out += renderer.render(parse_line("END history @carol"))
    assert out == [
        "--- conversation with Bob: last 2 messages ---",
        "[10:20:05] Bob → you: hi",
        "[10:20:05] you → Bob: hello",
        "--- end of history ---",
        "--- earlier with Bob: 1 message ---",
        "[10:20:05] Bob → you: before",
        "--- end of history ---",
        "* no older messages with Bob",
        "* no older messages with carol",
        "* no messages with carol yet",
    ]
    dimmed = render(f"HISTORY @bob {STAMP} bob :old", "END history @bob", colour=True)[1]
    assert re.fullmatch(r"\x1b\[2m\[[0-9:]{8}\] bob → you: old\x1b\[0m", dimmed)


def test_conversations_and_ignores_are_lists(india_time: None) -> None:
    old = format_timestamp(NOW - 3 * 86400)
    assert render(
        f"CONVERSATION carol {STAMP}",
        f"CONVERSATION bob-the-builder {old}",
        "END dms",
        "END dms",
        "OK ignore mallory",
        "OK unignore mallory",
        "IGNORED mallory",
        "IGNORED eve",
        "END ignores",
        "END ignores",
    ) == [
        "* conversations (2), most recent first:",
        "*   carol            last message 10:20:05",
        "*   bob-the-builder  last message 2026-11-22 10:20:05",
        "* no private messages yet; /msg <user> <text> sends one",
        "* ignoring mallory: their private messages are dropped",
        "* no longer ignoring mallory",
        "* ignoring (2): mallory, eve",
        "* you ignore nobody",
    ]


def test_private_lines_too_short_are_shown_marked() -> None:
    assert render("DM bob", "CONVERSATION", "IGNORED", "WHISPER bob :new tag") == [
        "? DM bob",
        "? CONVERSATION",
        "? IGNORED",
    ]
