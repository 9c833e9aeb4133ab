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

__all__ = ["CONTROLS", "MISSED_WINDOW", "Renderer", "Style", "clean", "use_colour"]

#: Seconds after the login's room list within which a private message may
#: be one replayed as missed.  The server says where the replay ends
#: (C{END unread}) but not that there is none, and then the next private
#: message, minutes later maybe, is live.
MISSED_WINDOW = 5.0


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
    Multi-line replies (room list, members, history, conversations,
    ignores, operators, bans, the audit log) are collected until their
    C{END} line and shown as one block.
    A private message reads C{[14:02:11] alice \u2192 you: hi} (your own,
    C{you \u2192 bob}), so that it is never mistaken for one said in the room.
    Moderation reads as sentences (C{* bob kicked mallory (spam)}), with
    C{you} where it is about the reader, and an admin's notice starts with
    C{!!}.

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
        self._conversations: list[tuple[str, str]] = []
        self._ignored: list[str] = []
        self._keepers: list[str] = []
        self._bans: list[tuple[str, str, str, str]] = []
        self._audit: list[tuple[str, ...]] = []
        # The room (lower case) whose history on joining has just ended:
        # a TOPIC right after it is the room's topic, not a change.
        self._joined: str | None = None
        # The history targets (lower case, C{@user} for a conversation) whose
        # next END history ends an opening (joining, /dm) rather than a page.
        self._openings: set[str] = set()
        # The latest stamp shown of each room (lower case), and the rooms
        # being joined again after a reconnection, with the latest stamp
        # shown before the drop: their history shows only what was missed.
        self._latest: dict[str, str] = {}
        self._rejoining: dict[str, str] = {}
        # OK login seen, its room list not finished: the missed private
        # messages come right after that list's END.
        self._logging_in = False
        # Right after the login's room list: whether the next DM or INFO
        # line may be a missed one, until when, and whether the heading is
        # out.
        self._may_be_missed = False
        self._missed_until = 0.0
        self._missed_shown = False
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
            "DM": self._dm,
            "CONVERSATION": self._conversation,
            "IGNORED": self._ignored_line,
            "TOPIC": self._topic,
            "OP": self._op,
            "DEOP": self._op,
            "OPERATOR": self._operator,
            "KICK": self._kick,
            "BAN": self._kick,
            "UNBAN": self._act,
            "MUTE": self._act,
            "UNMUTE": self._act,
            "BANNED": self._banned,
            "DELETE": self._delete,
            "NOTICE": self._notice,
            "DROPPED": self._dropped,
            "AUDIT": self._audit_line,
        }

    def render(self, line: ServerLine) -> list[str]:
        """
        @return: The display lines for C{line}, without line ends; often
            none, while a block is being collected.
        """
        heading = self._missed_heading(line)
        if line.tag != "TOPIC":
            self._joined = None
        handler = self._handlers.get(line.tag)
        if handler is None:
            # The protocol's rule: a tag a client does not know belongs to
            # a feature it does not use, and is ignored.
            return heading
        try:
            return [*heading, *handler(line)]
        except (IndexError, ValueError):
            # Too few arguments: not the contract, but still worth showing.
            return [*heading, self.unknown(_unparse(line))]

    def reset(self) -> None:
        """
        The connection dropped: forget the blocks it left half collected
        and the openings it left awaited, which a new connection would
        otherwise finish with lines of its own.
        """
        self._rooms, self._members, self._history = [], [], []
        self._conversations, self._ignored, self._keepers = [], [], []
        self._bans, self._audit = [], []
        self._joined = None
        self._openings.clear()
        self._rejoining.clear()
        self._logging_in = False
        self._may_be_missed = self._missed_shown = False

    def expect_rejoin(self, room: str) -> None:
        """
        The next history of C{room} is that of joining it again after a
        reconnection: only the messages after the last one shown are new.
        """
        self._rejoining[room.lower()] = self._latest.get(room.lower(), "")

    def expect_opening(self, target: str) -> None:
        """
        The next C{END history <target>} ends the history shown on opening
        C{target} (the last messages, as on joining a room), not a page of
        older ones: it gets the opening's frame.

        @param target: A room, or C{@user} for a conversation.
        """
        self._openings.add(target.lower())

    def _missed_heading(self, line: ServerLine) -> list[str]:
        """
        Say "missed while you were away" before the first private message
        replayed at login.  Those come right after the login's room list and
        before anything else, so any other line ends the chance, and so
        does a while without any (L{MISSED_WINDOW}); the server marks their
        end (C{END unread}) only when there were some.
        """
        if not self._may_be_missed:
            return []
        if not self._missed_shown and self._now() > self._missed_until:
            self._may_be_missed = False
            return []
        if line.tag == "END" and line.args[:1] == ("unread",):
            self._may_be_missed = False
            return []
        if line.tag == "INFO" or (
            line.tag == "DM" and len(line.args) > 2 and not self._is_me(line.args[2])
        ):
            if self._missed_shown:
                return []
            self._missed_shown = True
            return [self.system("missed while you were away:")]
        self._may_be_missed = False
        return []

    @property
    def replaying(self) -> bool:
        """
        Whether the private messages shown now are the ones missed while
        away, replayed at login.
        """
        return self._may_be_missed and self._missed_shown

    def _is_me(self, name: str) -> bool:
        return self.me is not None and name.lower() == self.me.lower()

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
        if stamp > self._latest.get(room.lower(), ""):
            self._latest[room.lower()] = stamp
        when = f"[{self.when(stamp)}]"
        where = "" if room == self.room else f"#{clean(room)} "
        name, text = clean(user), clean(line.text or "")
        style = self.style
        if history:
            # Its frame names the room.
            return style(f"{when} {name}: {text}", Style.DIM)
        name = style(name, Style.BOLD, style.name_colour(user))
        if user == self.me:
            text = style(text, Style.BOLD)
        return f"{style(when, Style.DIM)} {where}{name}: {text}"

    def _private(self, line: ServerLine, *, history: bool = False) -> str:
        """
        C{[time] alice \u2192 you: text} for a DM line or a conversation's
        HISTORY line (whose first argument is C{@partner}): styled like a
        room message, with the arrow and the names in one colour of their
        own, so that a private message stands out among the room's.
        """
        partner, stamp, sender = line.args[:3]
        partner = partner.removeprefix("@")
        mine = self._is_me(sender)
        source = "you" if mine else clean(sender)
        target = "you" if not mine or self._is_me(partner) else clean(partner)
        when = f"[{self.when(stamp)}]"
        text = clean(line.text or "")
        style = self.style
        if history:
            return style(f"{when} {source} \u2192 {target}: {text}", Style.DIM)
        if mine:
            text = style(text, Style.BOLD)
        who = style(f"{source} \u2192 {target}", Style.BOLD, Style.MAGENTA)
        return f"{style(when, Style.DIM)} {who}: {text}"

    def _hello(self, line: ServerLine) -> list[str]:
        greeting = f": {clean(line.text)}" if line.text else ""
        return [self.system(f"connected to {' '.join(map(clean, line.args))}{greeting}")]

    def _prompt(self, line: ServerLine) -> list[str]:
        return [self.system(f"the server asks for {clean(line.args[0])}: {clean(line.text or '')}")]

    def _ok(self, line: ServerLine) -> list[str]:
        command = line.args[0].lower() if line.args else ""
        if command in ("login", "register"):
            self._logging_in = True
        elif command == "join" and len(line.args) > 1:
            self.expect_opening(line.args[1])
        what = clean(line.args[1]) if len(line.args) > 1 else ""
        texts = {
            "login": f"logged in as {what}",
            "register": f"registered and logged in as {what}",
            "create": f"created room {what}",
            "join": f"joined {what}",
            "leave": f"left {what}",
            "ignore": f"ignoring {what}: their private messages are dropped",
            "unignore": f"no longer ignoring {what}",
            "lock": f"{what} is locked",
            "unlock": f"{what} is unlocked",
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

    def _conversation(self, line: ServerLine) -> list[str]:
        self._conversations.append((clean(line.args[0]), self.when(line.args[1])))
        return []

    def _ignored_line(self, line: ServerLine) -> list[str]:
        self._ignored.append(clean(line.args[0]))
        return []

    def _end(self, line: ServerLine) -> list[str]:
        what = line.args[0] if line.args else ""
        if what == "rooms":
            if self._logging_in:
                self._logging_in = False
                self._may_be_missed, self._missed_shown = True, False
                self._missed_until = self._now() + MISSED_WINDOW
            return self._end_rooms()
        if what == "members":
            room = clean(line.args[1]) if len(line.args) > 1 else ""
            members, self._members = self._members, []
            return [self.system(f"in {room} ({len(members)}): {', '.join(members)}")]
        if what == "history":
            target = line.args[1] if len(line.args) > 1 else ""
            if target.lower() in self._openings:
                self._openings.discard(target.lower())
                if not target.startswith("@"):
                    self._joined = target.lower()
                return self._end_history(target)
            return self._end_page(target)
        if what == "unread":
            shown, self._missed_shown = self._missed_shown, False
            return [self.system("end of missed messages")] if shown else []
        if what == "dms":
            return self._end_dms()
        if what == "ignores":
            ignored, self._ignored = self._ignored, []
            if not ignored:
                return [self.system("you ignore nobody")]
            return [self.system(f"ignoring ({len(ignored)}): {', '.join(ignored)}")]
        if what == "ops":
            return self._end_ops(line.args[1] if len(line.args) > 1 else "")
        if what == "bans":
            return self._end_bans(line.args[1] if len(line.args) > 1 else "")
        if what == "audit":
            return self._end_audit()
        # The end of help, whose lines the session shows its own way, or of
        # a block the client does not know (as for its tag, ignored).
        return []

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

    def _end_history(self, target: str) -> list[str]:
        """
        The history shown on joining a room or opening a conversation: its
        last messages.
        """
        history, self._history = self._history, []
        partner = target[1:] if target.startswith("@") else None
        if partner is None and target.lower() in self._rejoining:
            return self._missed(target, history)
        if not history:
            if partner is not None:
                return [self.system(f"no messages with {clean(partner)} yet")]
            return [self.system(f"no messages in {clean(target)} yet")]
        count = "1 message" if len(history) == 1 else f"{len(history)} messages"
        what = f"conversation with {clean(partner)}" if partner else f"history of {clean(target)}"
        return self._framed(f"--- {what}: last {count} ---", history)

    def _missed(self, room: str, history: list[ServerLine]) -> list[str]:
        """
        The history of a room joined again after a reconnection: what was
        said after the last message shown before the drop.
        """
        after = self._rejoining.pop(room.lower())
        missed = [item for item in history if item.args[1] > after]
        if not missed:
            return [self.system(f"nothing new in {clean(room)}")]
        count = "1 message" if len(missed) == 1 else f"{len(missed)} messages"
        return self._framed(f"--- missed in {clean(room)}: {count} ---", missed)

    def _end_page(self, target: str) -> list[str]:
        """
        A page of older history (C{/history}): the messages before the
        oldest one seen, or "no older messages" at the beginning.
        """
        history, self._history = self._history, []
        partner = target[1:] if target.startswith("@") else None
        where = f"with {clean(partner)}" if partner is not None else f"in {clean(target)}"
        if not history:
            return [self.system(f"no older messages {where}")]
        count = "1 message" if len(history) == 1 else f"{len(history)} messages"
        return self._framed(f"--- earlier {where}: {count} ---", history)

    def _framed(self, heading: str, history: list[ServerLine]) -> list[str]:
        dim = Style.DIM
        lines = [self.style(heading, dim)]
        for item in history:
            if item.args[0].startswith("@"):
                lines.append(self._private(item, history=True))
            else:
                lines.append(self._message(item, history=True))
        lines.append(self.style("--- end of history ---", dim))
        return lines

    def _end_dms(self) -> list[str]:
        conversations, self._conversations = self._conversations, []
        if not conversations:
            return [self.system("no private messages yet; /msg <user> <text> sends one")]
        width = max(len(name) for name, _ in conversations)
        lines = [self.system(f"conversations ({len(conversations)}), most recent first:")]
        for name, when in conversations:
            lines.append(self.system(f"  {name:<{width}}  last message {when}"))
        return lines

    def _msg(self, line: ServerLine) -> list[str]:
        return [self._message(line)]

    def _dm(self, line: ServerLine) -> list[str]:
        return [self._private(line)]

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

    # --- moderation ------------------------------------------------------

    def _who(self, name: str, *, possessive: bool = False) -> str:
        """
        A user named in a moderation line: C{you} (C{your}) when it is the
        reader, who must not miss that it is about them.
        """
        if self._is_me(name):
            return "your" if possessive else "you"
        return f"{clean(name)}'s" if possessive else clean(name)

    def _where(self, room: str) -> str:
        """
        C{" in <room>"} for a line about a room other than ours (which the
        server sends only to an admin acting from elsewhere), else nothing.
        """
        if self.room is not None and room.lower() == self.room.lower():
            return ""
        return f" in {clean(room)}"

    @staticmethod
    def _because(line: ServerLine) -> str:
        """
        The reason a moderator gave, in parentheses; nothing when none was
        (the line then has no text at all).
        """
        return f" ({clean(line.text)})" if line.text else ""

    def _topic(self, line: ServerLine) -> list[str]:
        """
        On joining, the topic with who set it and when; later, its change.
        """
        room, stamp, by = line.args[:3]
        joined, self._joined = self._joined, None
        text = clean(line.text or "")
        if joined == room.lower():
            if not text:
                return []
            return [self.system(f"Topic: {text} (set by {clean(by)}, {self.when(stamp)})")]
        where = self._where(room)
        if not text:
            return [self.system(f"{clean(by)} cleared the topic{where}")]
        return [self.system(f"{clean(by)} set the topic{where}: {text}")]

    def _op(self, line: ServerLine) -> list[str]:
        room, _stamp, by, user = line.args[:4]
        where = self._where(room)
        if line.tag == "OP":
            return [self.system(f"{clean(by)} made {self._who(user)} an operator{where}")]
        rights = self._who(user, possessive=True)
        return [self.system(f"{clean(by)} took away {rights} operator rights{where}")]

    def _kick(self, line: ServerLine) -> list[str]:
        """
        KICK and BAN: to the one sent out, which room they are out of.
        """
        room, _stamp, by, user = line.args[:4]
        verb = "kicked" if line.tag == "KICK" else "banned"
        if self._is_me(user):
            out = "out of" if line.tag == "KICK" else "from"
            text = f"{clean(by)} {verb} you {out} {clean(room)}{self._because(line)}"
            return [self.style(f"* {text}", Style.BOLD, Style.RED)]
        where = self._where(room)
        return [self.system(f"{clean(by)} {verb} {clean(user)}{where}{self._because(line)}")]

    def _act(self, line: ServerLine) -> list[str]:
        """
        UNBAN, MUTE, UNMUTE: C{* bob muted mallory}.
        """
        room, _stamp, by, user = line.args[:4]
        verb = {"UNBAN": "unbanned", "MUTE": "muted", "UNMUTE": "unmuted"}[line.tag]
        where = self._where(room)
        return [self.system(f"{clean(by)} {verb} {self._who(user)}{where}{self._because(line)}")]

    def _operator(self, line: ServerLine) -> list[str]:
        _room, user, role = line.args[:3]
        keeper = clean(user)
        if role != "operator":
            keeper += f" ({clean(role)})"
        self._keepers.append(keeper)
        return []

    def _end_ops(self, room: str) -> list[str]:
        keepers, self._keepers = self._keepers, []
        if not keepers:
            return [self.system(f"{clean(room)} has no operators")]
        return [self.system(f"Operators of {clean(room)}: {', '.join(keepers)}")]

    def _banned(self, line: ServerLine) -> list[str]:
        _room, user, stamp, by = line.args[:4]
        self._bans.append((clean(user), clean(by), self.when(stamp), clean(line.text or "")))
        return []

    def _end_bans(self, room: str) -> list[str]:
        bans, self._bans = self._bans, []
        if not bans:
            return [self.system(f"nobody is banned from {clean(room)}")]
        width = max(len(user) for user, *_ in bans)
        lines = [self.system(f"banned from {clean(room)} ({len(bans)}):")]
        for user, by, when, reason in bans:
            why = f": {reason}" if reason else ""
            lines.append(self.system(f"  {user:<{width}}  by {by}, {when}{why}"))
        return lines

    def _delete(self, line: ServerLine) -> list[str]:
        """
        A message deleted: which one, by its time.  Lines already printed
        stay in the terminal's scrollback (and in a script's output), so
        the notice is all the client can do; it does not repeat the text.
        """
        room, stamp, by = line.args[:3]
        where = self._where(room)
        return [self.system(f"{clean(by)} deleted a message ({self.when(stamp)}){where}")]

    def _notice(self, line: ServerLine) -> list[str]:
        """
        An admin's notice to everyone: marked apart from every other line.
        """
        _stamp, by = line.args[:2]
        text = f"!! Notice from {clean(by)}: {clean(line.text or '')}"
        return [self.style(text, Style.BOLD, Style.YELLOW)]

    def _dropped(self, line: ServerLine) -> list[str]:
        room, _stamp, by = line.args[:3]
        text = f"{clean(by)} dropped the room {clean(room)}{self._because(line)}"
        if self.room is not None and room.lower() == self.room.lower():
            return [self.style(f"* {text}", Style.BOLD, Style.RED)]
        return [self.system(text)]

    def _audit_line(self, line: ServerLine) -> list[str]:
        stamp, actor, action, room, target = line.args[:5]
        self._audit.append(
            (self.when(stamp), *map(clean, (actor, action, room, target)), clean(line.text or ""))
        )
        return []

    def _end_audit(self) -> list[str]:
        """
        The audit entries as a table, oldest first, as the server sends them.
        """
        entries, self._audit = self._audit, []
        if not entries:
            return [self.system("the audit log is empty")]
        rows = [("time", "actor", "action", "room", "target", "reason"), *entries]
        widths = [max(len(row[column]) for row in rows) for column in range(5)]
        count = "1 entry" if len(entries) == 1 else f"{len(entries)} entries"
        lines = [self.system(f"audit log, oldest first ({count}):")]
        for row in rows:
            cells = [f"{cell:<{width}}" for cell, width in zip(row, widths, strict=False)]
            lines.append(self.system(f"  {'  '.join([*cells, row[5]]).rstrip()}"))
        return lines


def _unparse(line: ServerLine) -> str:
    head = " ".join((line.tag, *line.args))
    return head if line.text is None else f"{head} :{line.text}"
