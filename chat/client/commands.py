"""
What the user can type, in one place: the help text and the words Tab
completes.

The commands, their usages and their help lines come from the server's own
table, L{chat.commands.COMMANDS}, so that a command the server learns is
listed and completed without a change here; the client adds only its own
words (C{exit}, the lobby's C{create}), commands (C{/dm}, C{/room}, and
C{/history} alone, which pages back) and keys.
"""

# test-case-name: tests.client.test_commands

from __future__ import annotations

from collections.abc import Iterable, Sequence

from chat.commands import COMMANDS, State

__all__ = [
    "CLIENT_COMMANDS",
    "CLIENT_KEPT",
    "HELP",
    "SLASH_COMMANDS",
    "complete",
    "completions",
    "help_text",
    "slash_commands",
]

#: Where the client's help applies: it is shown once the user is logged in
#: (before that, the client asks its own questions).
_LOGGED_IN = frozenset({State.LOBBY, State.IN_ROOM})

#: What the client understands besides the server's commands, in the
#: help's two columns.
CLIENT_HELP = (
    ("/dm <user>", "talk with <user>: the lines you type go to them, until /room"),
    ("/room", "after /dm: lines go to your room again (or the lobby)"),
    ("/history", "alone: page back through the room or conversation you are in"),
    ("//text", 'send a message that starts with "/" (as "/text")'),
    ("Ctrl-D", "disconnect, as /quit does"),
)


#: The server's commands the client does for the user, and keeps out of
#: its help and Tab: C{/token}, whose token it keeps to itself.
CLIENT_KEPT = frozenset({"token"})


#: The width of the help's first column.
_USAGE_WIDTH = 18


def help_text() -> str:
    """
    The client's C{/help}: the server's commands a logged-in user may give,
    in the table's order and words, then the client's own.  Kept here, not
    fetched from the server, so that C{/help} works the same before and
    after the login.
    """
    rows = [
        (spec.usage, spec.help)
        for spec in COMMANDS
        if spec.states & _LOGGED_IN and spec.name not in CLIENT_KEPT
    ]
    rows.extend(CLIENT_HELP)
    lines = ["commands (in a room, any other line is a message to the room):"]
    for usage, text in rows:
        if len(usage) > _USAGE_WIDTH:
            # Too long for its column: the usage alone, the text below.
            lines += [f"  {usage}", f"  {'':<{_USAGE_WIDTH}} {text}"]
        else:
            lines.append(f"  {usage:<{_USAGE_WIDTH}} {text}")
    return "\n".join(lines)


HELP = help_text()

#: The C{/commands} the client answers itself (C{/history} alone), offered by
#: Tab wherever the user is logged in.
CLIENT_COMMANDS = ("/dm", "/history", "/room")

#: Every C{/command} the server knows, from its table.
SLASH_COMMANDS = tuple(sorted(f"/{command.name}" for command in COMMANDS))


def slash_commands(state: State) -> tuple[str, ...]:
    """
    The C{/commands} the table allows in C{state}, sorted: what Tab offers
    there (no C{/login} once logged in, no C{/who} in the lobby).
    """
    return tuple(
        sorted(
            f"/{command.name}"
            for command in COMMANDS
            if state in command.states and command.name not in CLIENT_KEPT
        )
    )


#: The answers to "login or register?".
LOGIN_WORDS = ("login", "register")

#: The lobby's bare words, besides room names.
LOBBY_WORDS = ("create", "exit")

#: Commands whose argument is an existing room.
ROOM_ARGUMENT = ("/join", "/drop")

#: Commands whose argument is a user: private messages, ignores, and the
#: moderators' and admins' commands that act on someone.
USER_ARGUMENT = (
    "/msg",
    "/dm",
    "/ignore",
    "/unignore",
    "/op",
    "/deop",
    "/kick",
    "/ban",
    "/unban",
    "/mute",
    "/unmute",
    "/lock",
    "/unlock",
)

#: The command whose argument is a room, or C{@} and a user.
HISTORY = "/history"


def _users_for(word: str, users: Iterable[str], prefix: str = "") -> list[str]:
    """
    The user names (each after C{prefix}) that C{word} starts, in any case:
    the server takes a user's name in any case, so Tab finishes what was
    typed as it was typed (C{bo} and Tab is C{bob} for C{Bob}).
    """
    folded = word.lower()
    choices = []
    for user in users:
        name = prefix + user
        if name.lower().startswith(folded):
            choices.append(word + name[len(word) :])
    return choices


def completions(
    before: str,
    *,
    asking_mode: bool,
    in_lobby: bool,
    rooms: Iterable[str] = (),
    users: Iterable[str] = (),
    talking: bool = False,
) -> list[str]:
    """
    The words that could finish the word being typed, C{before} being the
    input line up to the cursor; sorted, without duplicates.

    @param asking_mode: The question is "login or register?".
    @param in_lobby: Logged in and in no room, where a bare word is a room
        name or a lobby command; in a room it is a message, and only
        C{/commands} are completed.  Only the C{/commands} the server's
        table allows there are offered.
    @param rooms: The room names the client knows of (the last room list,
        and the rooms joined since), completed after C{/join}, C{/drop}
        and C{/history}.
    @param users: The user names the client has seen, completed after
        the commands of L{USER_ARGUMENT} and C{/history @}.
    @param talking: A conversation is open (C{/dm}): a bare word is a
        private message, so only C{/commands} are completed there.
    """
    words = before.split(" ")
    word = words[-1]
    earlier = [w for w in words[:-1] if w]
    if asking_mode:
        choices: Iterable[str] = LOGIN_WORDS if not earlier else ()
    elif not earlier:
        if word.startswith("/"):
            state = State.LOBBY if in_lobby else State.IN_ROOM
            choices = (*slash_commands(state), *CLIENT_COMMANDS)
        elif in_lobby and not talking:
            choices = (*LOBBY_WORDS, *rooms)
        else:
            choices = ()
    elif len(earlier) == 1 and earlier[0].lower() in ROOM_ARGUMENT:
        choices = rooms
    elif len(earlier) == 1 and earlier[0].lower() in USER_ARGUMENT:
        choices = _users_for(word, users)
    elif len(earlier) == 1 and earlier[0].lower() == HISTORY:
        choices = _users_for(word, users, "@") if word.startswith("@") else rooms
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
