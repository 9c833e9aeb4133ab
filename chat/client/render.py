"""
Server lines as a person reads them: local times, C{*} for information,
C{!} for errors, blocks for lists, colour only where it is wanted.
"""

# test-case-name: tests.client.test_render

from __future__ import annotations

import os
import re
import time
import zlib
from collections.abc import Callable, Mapping

from chat.lines import ServerLine, parse_timestamp

__all__ = ["CONTROLS", "Renderer", "Style", "clean", "use_colour"]


def use_colour(stdout_fd: int, environ: Mapping[str, str]) -> bool:
    """
    Colour only for a person looking at a terminal who has not opted out
    (U{https://no-color.org}: C{NO_COLOR} set to anything non-empty), and
    never for a terminal that cannot show it.
    """
    if environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    return os.isatty(stdout_fd)


class Style:
    """
    ANSI styling that can be switched off as a whole, so the renderer never
    has to ask whether colour is wanted.
    """

    BOLD = "1"
    DIM = "2"
    RED = "31"
    GREEN = "32"
    YELLOW = "33"
    BLUE = "34"
    MAGENTA = "35"
    CYAN = "36"
    NAME_COLOURS = (GREEN, YELLOW, BLUE, MAGENTA, CYAN)

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *codes: str) -> str:
        """
        Wrap C{text} in the SGR C{codes}, or return it as it is.
        """
        if not self.enabled or not codes or not text:
            return text
        return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"

    def name_colour(self, name: str) -> str:
        """
        A stable colour per user, so that a conversation is easy to follow;
        crc32 rather than hash() because hash() changes between runs.
        """
        index = zlib.crc32(name.lower().encode("utf-8")) % len(self.NAME_COLOURS)
        return self.NAME_COLOURS[index]


#: Every C0 and C1 control but TAB.
CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def clean(text: str) -> str:
    """
    Make text from the network safe to print on a terminal: other users
    choose it, and an escape sequence in a message must not move the cursor,
    retitle the window or hide lines.  C0 controls become caret notation
    (C{^[}), C1 controls become U+FFFD; a tab is left alone.
    """

    def replace(match: re.Match[str]) -> str:
        code = ord(match.group())
        if code < 0x20 or code == 0x7F:
            return "^" + chr(code ^ 0x40)
        return "\ufffd"

    return CONTROLS.sub(replace, text)


class Renderer:
    """
    Turn server lines into the lines a person reads.

    Messages look like C{[14:02:11] alice: hello} in local time; everything
    else the server says starts with C{*} (information) or C{!} (an error),
    so that nobody mistakes a system line for something a user typed.
    Multi-line replies (room list, members, history) are collected until
    their C{END} line and shown as one block.

    @ivar me: The logged-in user, whose own messages are shown in bold.
    @ivar room: The room we are in; a message for another room (which the
        server should never send) is shown with the room name.
    """

    def __init__(self, style: Style, now: Callable[[], float]) -> None:
        self.style = style
        self._now = now
        self.me: str | None = None
        self.room: str | None = None
        self._rooms: list[tuple[str, str]] = []
        self._members: list[str] = []
        self._history: list[ServerLine] = []
        self._handlers: dict[str, Callable[[ServerLine], list[str]]] = {
            "HELLO": self._hello,
            "PROMPT": self._prompt,
            "OK": self._ok,
            "ERR": self._err,
            "ROOM": self._room,
            "MEMBER": self._member,
            "HISTORY": self._history_line,
            "END": self._end,
            "MSG": self._msg,
            "JOIN": self._join,
            "PART": self._part,
            "INFO": self._info,
            "BYE": self._bye,
        }

    def render(self, line: ServerLine) -> list[str]:
        """
        @return: The display lines for C{line}, without line ends; often
            none, while a block is being collected.
        """
        handler = self._handlers.get(line.tag)
        if handler is None:
            return [self.unknown(_unparse(line))]
        try:
            return handler(line)
        except (IndexError, ValueError):
            # Too few arguments: not the contract, but still worth showing.
            return [self.unknown(_unparse(line))]

    def system(self, text: str) -> str:
        """
        A line of information, from the server or from the client itself.
        """
        return self.style(f"* {text}", Style.CYAN)

    def error(self, text: str) -> str:
        """
        A line saying something went wrong.
        """
        return self.style(f"! {text}", Style.RED, Style.BOLD)

    def unknown(self, raw: str) -> str:
        """
        A line the client does not understand, shown rather than dropped.
        """
        return self.style(f"? {clean(raw)}", Style.YELLOW)

    def when(self, stamp: str) -> str:
        """
        A protocol timestamp in local time: the time of day alone when it is
        today, the date too otherwise (history can be days old).
        """
        try:
            seconds = parse_timestamp(stamp)
        except ValueError:
            return clean(stamp)
        local = time.localtime(seconds)
        if local[:3] == time.localtime(self._now())[:3]:
            return time.strftime("%H:%M:%S", local)
        return time.strftime("%Y-%m-%d %H:%M:%S", local)

    def _message(self, line: ServerLine, *, history: bool = False) -> str:
        """
        C{[time] user: text} for a MSG or HISTORY line: a live one with the
        name in its colour (and your own text in bold), a history one all
        dim, as styles do not nest.
        """
        room, stamp, user = line.args[:3]
        when = f"[{self.when(stamp)}]"
        where = "" if room == self.room else f"#{clean(room)} "
        name, text = clean(user), clean(line.text or "")
        style = self.style
        if history:
            return style(f"{when} {where}{name}: {text}", Style.DIM)
        name = style(name, Style.BOLD, style.name_colour(user))
        if user == self.me:
            text = style(text, Style.BOLD)
        return f"{style(when, Style.DIM)} {where}{name}: {text}"

    def _hello(self, line: ServerLine) -> list[str]:
        greeting = f": {clean(line.text)}" if line.text else ""
        return [self.system(f"connected to {' '.join(map(clean, line.args))}{greeting}")]

    def _prompt(self, line: ServerLine) -> list[str]:
        return [self.system(f"the server asks for {clean(line.args[0])}: {clean(line.text or '')}")]

    def _ok(self, line: ServerLine) -> list[str]:
        command = line.args[0].lower() if line.args else ""
        what = clean(line.args[1]) if len(line.args) > 1 else ""
        texts = {
            "login": f"logged in as {what}",
            "register": f"registered and logged in as {what}",
            "create": f"created room {what}",
            "join": f"joined {what}",
            "leave": f"left {what}",
        }
        text = texts.get(command) or "ok: " + " ".join(map(clean, line.args))
        if line.text:
            text += f" ({clean(line.text)})"
        return [self.system(text)]

    def _err(self, line: ServerLine) -> list[str]:
        code = clean(line.args[0]) if line.args else "error"
        if line.text:
            return [self.error(f"{clean(line.text)} ({code})")]
        return [self.error(code)]

    def _room(self, line: ServerLine) -> list[str]:
        self._rooms.append((clean(line.args[0]), clean(line.args[1])))
        return []

    def _member(self, line: ServerLine) -> list[str]:
        self._members.append(clean(line.args[1]))
        return []

    def _history_line(self, line: ServerLine) -> list[str]:
        line.args[2]  # checked now, to show a short line on its own
        self._history.append(line)
        return []

    def _end(self, line: ServerLine) -> list[str]:
        what = line.args[0] if line.args else ""
        if what == "rooms":
            return self._end_rooms()
        if what == "members":
            room = clean(line.args[1]) if len(line.args) > 1 else ""
            members, self._members = self._members, []
            return [self.system(f"in {room} ({len(members)}): {', '.join(members)}")]
        if what == "history":
            room = line.args[1] if len(line.args) > 1 else ""
            return self._end_history(room)
        if what == "help":
            return []
        return [self.unknown(_unparse(line))]

    def _end_rooms(self) -> list[str]:
        rooms, self._rooms = self._rooms, []
        if not rooms:
            return [self.system('no rooms yet; "create <room>" makes one')]
        width = max(len(name) for name, _ in rooms)
        lines = [self.system(f"rooms ({len(rooms)}):")]
        for name, members in rooms:
            people = "1 person" if members == "1" else f"{members} people"
            lines.append(self.system(f"  {name:<{width}}  {people}"))
        return lines

    def _end_history(self, room: str) -> list[str]:
        history, self._history = self._history, []
        if not history:
            return [self.system(f"no messages in {clean(room)} yet")]
        count = "1 message" if len(history) == 1 else f"{len(history)} messages"
        dim = Style.DIM
        lines = [self.style(f"--- history of {clean(room)}: last {count} ---", dim)]
        lines += [self._message(item, history=True) for item in history]
        lines.append(self.style("--- end of history ---", dim))
        return lines

    def _msg(self, line: ServerLine) -> list[str]:
        return [self._message(line)]

    def _join(self, line: ServerLine) -> list[str]:
        room, stamp, user = line.args[:3]
        return [self.system(f"[{self.when(stamp)}] {clean(user)} joined {clean(room)}")]

    def _part(self, line: ServerLine) -> list[str]:
        room, stamp, user = line.args[:3]
        return [self.system(f"[{self.when(stamp)}] {clean(user)} left {clean(room)}")]

    def _info(self, line: ServerLine) -> list[str]:
        return [self.system(clean(line.text or " ".join(line.args)))]

    def _bye(self, line: ServerLine) -> list[str]:
        return [self.system(f"bye: {clean(line.text)}" if line.text else "bye")]


def _unparse(line: ServerLine) -> str:
    head = " ".join((line.tag, *line.args))
    return head if line.text is None else f"{head} :{line.text}"
