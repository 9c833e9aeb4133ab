"""
Server lines as a person reads them, and when there is colour.
"""

from __future__ import annotations

import os
import re

from chat.client import (
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
