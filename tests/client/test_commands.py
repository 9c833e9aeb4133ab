"""
What Tab completes, from the server's command table.
"""

from __future__ import annotations

from chat.client.commands import HELP, SLASH_COMMANDS, complete, completions
from chat.commands import COMMANDS, SLASH_VERBS, State


def test_completions_come_from_the_servers_command_table() -> None:
    assert set(SLASH_COMMANDS) == {f"/{verb}" for verb in SLASH_VERBS}
    # Only what the table allows where the user is: no /login nor /register
    # once logged in, no /leave nor /who in the lobby.
    in_room = completions("/", asking_mode=False, in_lobby=False)
    assert in_room == [c for c in SLASH_COMMANDS if c not in ("/login", "/register")]
    assert in_room == ["/create", "/help", "/join", "/leave", "/quit", "/rooms", "/who"]
    assert completions("/", asking_mode=False, in_lobby=True) == [
        "/create",
        "/help",
        "/join",
        "/quit",
        "/rooms",
    ]
    assert completions("/l", asking_mode=False, in_lobby=False) == ["/leave"]
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


def test_help_comes_from_the_servers_command_table() -> None:
    lines = HELP.splitlines()
    logged_in = {State.LOBBY, State.IN_ROOM}
    table = [spec for spec in COMMANDS if spec.states & logged_in]
    assert [spec.name for spec in table] == [
        "rooms",
        "create",
        "join",
        "leave",
        "who",
        "help",
        "quit",
    ]
    assert lines[1 : 1 + len(table)] == [f"  {spec.usage:<17} {spec.help}" for spec in table]
    assert "  /join <room>      join a room (in the lobby: just the room's name)" in lines
    assert lines[1 + len(table) :] == [
        '  //text            send a message that starts with "/" (as "/text")',
        "  Ctrl-D            disconnect, as /quit does",
    ]
    assert not any("/login" in line or "/register" in line for line in lines)
