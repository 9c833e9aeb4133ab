"""
What the user can type, in one place: the help text and the words Tab
completes.

The command names come from the server's own table in L{chat.commands}, so
that a command the server learns is completed without a change here; the
client adds only its own words (C{exit}, the lobby's C{create}).
"""

# test-case-name: tests.client.test_commands

from __future__ import annotations

from collections.abc import Iterable, Sequence

from chat.commands import SLASH_VERBS

__all__ = ["HELP", "SLASH_COMMANDS", "complete", "completions"]

# What the user can type once logged in.  Kept here, not fetched from the
# server, so that /help works the same before and after the login.
HELP = """\
commands (in a room, any other line is a message to the room):
  /rooms            list the rooms and how many people are in each
  /create <room>    create a room and join it (in the lobby: create <room>)
  /join <room>      join a room, leaving the current one (in the lobby: <room>)
  /leave            leave the room, back to the lobby
  /who              list the people in this room
  //text            send a message that starts with "/" (as "/text")
  /quit or exit     leave and disconnect (Ctrl-D too)
  /help             this list"""

#: Every C{/command} the server knows.  The one line to change when
#: L{chat.commands} grows its public C{COMMANDS} table:
#: C{tuple(sorted(f"/{command.name}" for command in COMMANDS))}.
SLASH_COMMANDS = tuple(sorted(f"/{verb}" for verb in SLASH_VERBS))

#: The answers to "login or register?".
LOGIN_WORDS = ("login", "register")

#: The lobby's bare words, besides room names.
LOBBY_WORDS = ("create", "exit")

#: Commands whose argument is an existing room.
ROOM_ARGUMENT = ("/join",)


def completions(
    before: str, *, asking_mode: bool, in_lobby: bool, rooms: Iterable[str] = ()
) -> list[str]:
    """
    The words that could finish the word being typed, C{before} being the
    input line up to the cursor; sorted, without duplicates.

    @param asking_mode: The question is "login or register?".
    @param in_lobby: Logged in and in no room, where a bare word is a room
        name or a lobby command; in a room it is a message, and only
        C{/commands} are completed.
    @param rooms: The room names the client knows of (the last room list,
        and the rooms joined since).
    """
    words = before.split(" ")
    word = words[-1]
    earlier = [w for w in words[:-1] if w]
    if asking_mode:
        choices: Iterable[str] = LOGIN_WORDS if not earlier else ()
    elif not earlier:
        if word.startswith("/"):
            choices = SLASH_COMMANDS
        elif in_lobby:
            choices = (*LOBBY_WORDS, *rooms)
        else:
            choices = ()
    elif len(earlier) == 1 and earlier[0].lower() in ROOM_ARGUMENT:
        choices = rooms
    else:
        choices = ()
    return sorted({choice for choice in choices if choice.startswith(word)})


def complete(word: str, choices: Sequence[str]) -> str:
    """
    What Tab adds to C{word}: the rest of the one choice and a space, or
    what all the choices have in common; empty when that is nothing.
    """
    if len(choices) == 1:
        return choices[0][len(word) :] + " "
    # What all share is what the first and last (in order) share.
    first, last = min(choices), max(choices)
    shared = 0
    while shared < min(len(first), len(last)) and first[shared] == last[shared]:
        shared += 1
    return first[len(word) : shared]
