"""
What Tab completes, from the server's command table.
"""

from __future__ import annotations

from chat.client.commands import SLASH_COMMANDS, complete, completions
from chat.commands import SLASH_VERBS


def test_completions_come_from_the_servers_command_table() -> None:
    assert set(SLASH_COMMANDS) == {f"/{verb}" for verb in SLASH_VERBS}
    assert completions("/", asking_mode=False, in_lobby=False) == list(SLASH_COMMANDS)
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
