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


# --- moderation and administration ------------------------------------


def test_the_topic_on_joining_and_its_changes(india_time: None) -> None:
    old = format_timestamp(NOW - 86400)
    assert render(
        "OK join Lounge",
        "END history Lounge",
        f"TOPIC Lounge {STAMP} bob :no spam please",
        f"TOPIC general {STAMP} bob :weather talk",
        f"TOPIC general {STAMP} bob",
        f"TOPIC general {STAMP} bob :",
    ) == [
        "* joined Lounge",
        "* no messages in Lounge yet",
        "* Topic: no spam please (set by bob, 10:20:05)",
        "* bob set the topic: weather talk",
        "* bob cleared the topic",
        "* bob cleared the topic",
    ]
    # Only right after the history on joining: not after a page of older
    # messages, nor after any other line.
    assert render(
        "OK join general",
        f"HISTORY general {STAMP} alice :hi",
        "END history general",
        f"TOPIC general {old} bob :older",
        "END history general",
        f"TOPIC general {STAMP} carol :new",
        "OK join general",
        "END history general",
        f"JOIN general {STAMP} dave",
        f"TOPIC general {STAMP} carol :later",
    )[3:] == [
        "--- end of history ---",
        "* Topic: older (set by bob, 2026-11-24 10:20:05)",
        "* no older messages in general",
        "* carol set the topic: new",
        "* joined general",
        "* no messages in general yet",
        "* [10:20:05] dave joined general",
        "* carol set the topic: later",
    ]


def test_operators_made_and_unmade_and_listed() -> None:
    assert render(
        f"OP general {STAMP} alice bob",
        f"DEOP general {STAMP} alice bob",
        f"OP general {STAMP} alice carol",
        f"DEOP general {STAMP} alice carol",
        "OPERATOR general alice owner",
        "OPERATOR general bob operator",
        "END ops general",
        "END ops general",
        me="carol",
    ) == [
        "* alice made bob an operator",
        "* alice took away bob's operator rights",
        "* alice made you an operator",
        "* alice took away your operator rights",
        "* Operators of general: alice (owner), bob",
        "* general has no operators",
    ]


def test_kicks_and_bans_with_and_without_a_reason() -> None:
    assert render(
        f"KICK general {STAMP} bob mallory :spam",
        f"KICK general {STAMP} bob mallory",
        f"BAN general {STAMP} bob mallory :spam, again",
        f"BAN general {STAMP} bob eve",
        f"UNBAN general {STAMP} bob eve",
        f"MUTE general {STAMP} bob mallory",
        f"UNMUTE general {STAMP} bob mallory",
        f"MUTE general {STAMP} bob alice",
        me="alice",
    ) == [
        "* bob kicked mallory (spam)",
        "* bob kicked mallory",
        "* bob banned mallory (spam, again)",
        "* bob banned eve",
        "* bob unbanned eve",
        "* bob muted mallory",
        "* bob unmuted mallory",
        "* bob muted you",
    ]


def test_kicked_or_banned_yourself_says_from_where() -> None:
    assert render(
        f"KICK general {STAMP} bob Alice :spam",
        f"BAN general {STAMP} bob alice",
        me="alice",
    ) == [
        "* bob kicked you out of general (spam)",
        "* bob banned you from general",
    ]
    [kicked] = render(f"KICK general {STAMP} bob alice :\x1b[2Jx", me="alice", colour=True)
    assert kicked == "\x1b[1;31m* bob kicked you out of general (^[[2Jx)\x1b[0m"


def test_bans_are_a_list_with_who_when_and_why(india_time: None) -> None:
    old = format_timestamp(NOW - 86400)
    assert render(
        f"BANNED general mallory {STAMP} bob :spam",
        f"BANNED general eve-the-spy {old} alice",
        "END bans general",
        "END bans general",
    ) == [
        "* banned from general (2):",
        "*   mallory      by bob, 10:20:05: spam",
        "*   eve-the-spy  by alice, 2026-11-24 10:20:05",
        "* nobody is banned from general",
    ]


def test_a_deleted_message_is_named_by_its_time_not_shown_again(india_time: None) -> None:
    assert render(
        f"MSG general {STAMP} mallory :buy now",
        f"DELETE general {STAMP} bob",
    ) == [
        "[10:20:05] mallory: buy now",
        "* bob deleted a message (10:20:05)",
    ]


def test_a_notice_stands_out() -> None:
    assert render(f"NOTICE {STAMP} admin :restart at noon") == [
        "!! Notice from admin: restart at noon"
    ]
    [notice] = render(f"NOTICE {STAMP} admin :hi", colour=True)
    assert notice == "\x1b[1;33m!! Notice from admin: hi\x1b[0m"


def test_a_dropped_room() -> None:
    assert render(
        f"DROPPED general {STAMP} admin :spam haven",
        f"DROPPED Lounge {STAMP} admin",
    ) == [
        "* admin dropped the room general (spam haven)",
        "* admin dropped the room Lounge",
    ]


def test_lines_about_another_room_name_it(india_time: None) -> None:
    # An admin acting from elsewhere (the server says it only to them).
    assert render(
        f"KICK Lounge {STAMP} admin mallory :spam",
        f"TOPIC Lounge {STAMP} admin :new",
        f"DELETE Lounge {STAMP} admin",
    ) == [
        "* admin kicked mallory in Lounge (spam)",
        "* admin set the topic in Lounge: new",
        "* admin deleted a message (10:20:05) in Lounge",
    ]


def test_the_audit_log_is_a_table(india_time: None) -> None:
    old = format_timestamp(NOW - 86400)
    assert render(
        f"AUDIT {old} admin lock - mallory :spammer",
        f"AUDIT {STAMP} bob kick Lounge mallory",
        f"AUDIT {STAMP} admin wall - - :restart at noon",
        "END audit",
        "END audit",
    ) == [
        "* audit log, oldest first (3 entries):",
        "*   time                 actor  action  room    target   reason",
        "*   2026-11-24 10:20:05  admin  lock    -       mallory  spammer",
        "*   10:20:05             bob    kick    Lounge  mallory",
        "*   10:20:05             admin  wall    -       -        restart at noon",
        "* the audit log is empty",
    ]


def test_locks_answered_and_moderation_errors_shown_as_errors() -> None:
    assert render(
        "OK lock mallory",
        "OK unlock mallory",
        "ERR forbidden :only operators may kick",
        "ERR not-here :mallory is not in general",
        "ERR banned :you are banned from Lounge",
        "ERR muted",
        "ERR locked :this account is locked",
        "ERR no-such-message :no message at that time",
    ) == [
        "* mallory is locked",
        "* mallory is unlocked",
        "! only operators may kick (forbidden)",
        "! mallory is not in general (not-here)",
        "! you are banned from Lounge (banned)",
        "! muted",
        "! this account is locked (locked)",
        "! no message at that time (no-such-message)",
    ]


def test_moderation_lines_too_short_are_shown_marked() -> None:
    assert render(
        f"KICK general {STAMP} bob",
        "TOPIC general",
        "OPERATOR general",
        "NOTICE",
        f"AUDIT {STAMP} bob",
    ) == [
        f"? KICK general {STAMP} bob",
        "? TOPIC general",
        "? OPERATOR general",
        "? NOTICE",
        f"? AUDIT {STAMP} bob",
    ]
