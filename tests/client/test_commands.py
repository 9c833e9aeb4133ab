"""
What Tab completes, from the server's command table.
"""

from __future__ import annotations

from chat.client.commands import (
    CLIENT_COMMANDS,
    CLIENT_KEPT,
    HELP,
    SLASH_COMMANDS,
    complete,
    completions,
)
from chat.commands import COMMANDS, SLASH_VERBS, State

# The table's commands of a logged-in user that are not new with private
# messages (which the table may or may not have yet).
_BEFORE_DMS = ["rooms", "create", "join", "leave", "who", "help", "quit"]


def test_completions_come_from_the_servers_command_table() -> None:
    assert set(SLASH_COMMANDS) == {f"/{verb}" for verb in SLASH_VERBS}
    # Only what the table allows where the user is: no /login nor /register
    # once logged in, no /leave nor /who in the lobby; and the client's own.
    in_room = completions("/", asking_mode=False, in_lobby=False)
    logged_in = {
        f"/{spec.name}"
        for spec in COMMANDS
        if spec.states & {State.LOBBY, State.IN_ROOM} and spec.name not in CLIENT_KEPT
    }
    assert in_room == sorted(logged_in | set(CLIENT_COMMANDS))
    assert {"/create", "/help", "/join", "/leave", "/quit", "/rooms", "/who"} <= set(in_room)
    assert {"/dm", "/room", "/history"} <= set(in_room)
    # Nor what the client does itself: the session token.
    assert "/token" not in in_room and "/token" not in HELP
    only_in_rooms = {f"/{spec.name}" for spec in COMMANDS if State.LOBBY not in spec.states}
    assert {"/leave", "/who", "/kick", "/topic"} <= only_in_rooms
    assert completions("/", asking_mode=False, in_lobby=True) == sorted(
        logged_in - only_in_rooms | set(CLIENT_COMMANDS)
    )
    # The moderators' commands in a room, the admins' everywhere.
    moderation = {"/topic", "/op", "/deop", "/ops", "/kick", "/ban", "/unban", "/bans"}
    moderation |= {"/mute", "/unmute", "/delete"}
    admin = {"/lock", "/unlock", "/wall", "/drop", "/audit"}
    assert moderation | admin <= set(in_room)
    assert admin <= set(completions("/", asking_mode=False, in_lobby=True))
    assert completions("/k", asking_mode=False, in_lobby=False) == ["/kick"]
    assert completions("/k", asking_mode=False, in_lobby=True) == []
    assert completions("/un", asking_mode=False, in_lobby=False) == [
        "/unban",
        "/unignore",
        "/unlock",
        "/unmute",
    ]
    assert completions("/le", asking_mode=False, in_lobby=False) == ["/leave"]
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


def test_user_names_complete_after_the_commands_that_take_one() -> None:
    users = ["Bob", "bea", "carol"]

    def names(before: str, **kwargs: bool) -> list[str]:
        kwargs.setdefault("in_lobby", False)
        return completions(before, asking_mode=False, users=users, rooms=["general"], **kwargs)

    # In any case, finished as typed (the server takes a name in any case).
    assert names("/msg b") == ["bea", "bob"]
    assert names("/MSG B") == ["Bea", "Bob"]
    assert names("/dm c") == ["carol"]
    assert names("/ignore bo") == ["bob"]
    assert names("/unignore ") == ["Bob", "bea", "carol"]
    assert names("/history @b") == ["@bea", "@bob"]
    assert names("/history g") == ["general"]
    assert names("/join b") == []
    assert names("/msg bob h") == []  # the text is not completed
    assert names("hello b") == []
    # A conversation open in the lobby: a bare word is a message there.
    assert names("g", in_lobby=True) == ["general"]
    assert names("g", in_lobby=True, talking=True) == []
    assert names("/d", in_lobby=True, talking=True)[:1] == ["/dm"]


def test_the_moderation_commands_complete_their_user_or_room() -> None:
    users = ["Bob", "bea", "mallory"]

    def names(before: str, in_lobby: bool = False) -> list[str]:
        return completions(
            before, asking_mode=False, in_lobby=in_lobby, users=users, rooms=["Lounge", "general"]
        )

    for verb in ("op", "deop", "kick", "ban", "unban", "mute", "unmute", "lock", "unlock"):
        assert names(f"/{verb} b") == ["bea", "bob"], verb
        assert names(f"/{verb.upper()} M") == ["Mallory"], verb
    assert names("/lock m", in_lobby=True) == ["mallory"]
    assert names("/drop L", in_lobby=True) == ["Lounge"]
    assert names("/drop ") == ["Lounge", "general"]
    # The reason, the topic, a stamp are not completed.
    assert names("/kick mallory m") == []
    assert names("/ban mallory s") == []
    assert names("/drop Lounge L") == []
    assert names("/topic b") == []
    assert names("/delete 2") == []
    assert names("/wall b") == []


def test_help_comes_from_the_servers_command_table() -> None:
    lines = HELP.splitlines()
    logged_in = {State.LOBBY, State.IN_ROOM}
    table = [spec for spec in COMMANDS if spec.states & logged_in and spec.name not in CLIENT_KEPT]
    assert [spec.name for spec in table if spec.name in _BEFORE_DMS] == _BEFORE_DMS
    rows = []
    for spec in table:
        if len(spec.usage) > 18:  # the usage alone, the text below
            rows += [f"  {spec.usage}", f"  {'':<18} {spec.help}"]
        else:
            rows.append(f"  {spec.usage:<18} {spec.help}")
    assert lines[1 : 1 + len(rows)] == rows
    assert "  /join <room>       join a room (in the lobby: just the room's name)" in lines
    assert lines[1 + len(rows) :] == [
        "  /dm <user>         talk with <user>: the lines you type go to them, until /room",
        "  /room              after /dm: lines go to your room again (or the lobby)",
        "  /history           alone: page back through the room or conversation you are in",
        '  //text             send a message that starts with "/" (as "/text")',
        "  Ctrl-D             disconnect, as /quit does",
    ]
    assert not any("/login" in line or "/register" in line for line in lines)
