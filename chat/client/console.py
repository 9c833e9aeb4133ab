"""
Standard input and output: lines printed above an input line that the user
edits, on a terminal; plain lines in and out through a pipe.

The editing is Twisted's own, the one its manhole uses:
L{twisted.conch.insults.insults.ServerProtocol} turns the terminal's bytes
into keys (arrows, Home, End, Delete as well as characters), and
L{twisted.conch.recvline.HistoricRecvLine} keeps the line, the cursor and
the history, and maps keys to editing.  L{Screen} adapts it to a chat,
where lines arrive while the user types: it draws the prompt and the line
itself (no screen reset, no insert mode left on the terminal), takes UTF-8
text rather than ASCII alone and moves the cursor by columns rather than
characters, hides a password, keeps passwords and answers out of the
history, and completes commands with Tab.
"""

# test-case-name: tests.client.test_console

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.conch.insults import insults
from twisted.conch.recvline import HistoricRecvLine
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from chat.client.commands import complete

if TYPE_CHECKING:
    from chat.client.session import ChatClient

__all__ = ["ConsoleProtocol", "Screen"]

# Keys that still work while the typing is hidden (a password): the ones
# that need no cursor on screen.
_BLIND_KEYS = frozenset((b"\r", b"\n", b"\x7f", b"\x08", b"\x15", b"\x17", b"\x04", b"\x0c"))


# Keys that do more than edit the line (hand it over, list choices, quit,
# redraw), so whatever they print must reach the screen as it is.
_DIRECT_KEYS = frozenset((b"\r", b"\n", b"\t", b"\x04", b"\x0c"))

_SGR = re.compile(r"\x1b\[[0-9;]*m")


def text_columns(text: str) -> int:
    """
    How many columns C{text} takes on a terminal: two for a wide character
    (CJK, most emoji), none for a combining mark or a format character (a
    zero-width joiner), one for the rest; colour codes take none.  recvline
    counts one for each character, which puts the cursor in the wrong
    place after a wide one.
    """
    width = 0
    for char in _SGR.sub("", text):
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def columns(chars: list[bytes]) -> int:
    """
    L{text_columns} of characters of the line buffer (UTF-8 bytes each).
    """
    return text_columns(b"".join(chars).decode("utf-8", "replace"))


class _Collector:
    """
    A transport that keeps what is written, for an edit whose drawing may
    be replaced by a whole redraw (L{Screen._edit}).
    """

    def __init__(self, into: list[bytes]) -> None:
        self.write = into.append


class Screen(HistoricRecvLine):
    """
    The output side of the console, and the input line being typed.

    On a terminal (C{interactive}) the last line on screen is always the
    prompt plus what has been typed so far, with the cursor where the user
    put it; L{show} erases it with C{\\r ESC [K}, prints the new line and
    redraws it, so incoming messages never garble the input.  Otherwise it
    just prints lines.

    Keys, besides characters: Left, Right, Home, End (and Ctrl-B, Ctrl-F,
    Ctrl-A, Ctrl-E), Backspace, Delete, Ctrl-U (erase the line), Ctrl-W
    (erase the word before the cursor), Ctrl-K (erase to the end), Up and
    Down (history; Ctrl-P, Ctrl-N), Tab (complete), Ctrl-L (redraw), Enter,
    and Ctrl-D (quit on an empty line, else delete).

    The line is recvline's C{lineBuffer}, one item per character (its UTF-8
    bytes), so that the cursor moves by characters, and by as many columns
    as each takes (L{columns}).

    When the prompt and the line do not fit on one row of the terminal
    (C{terminal_width} columns), the input line wraps over several rows,
    and every edit draws it again whole, from its first row: recvline's
    small cursor moves cannot cross a row.

    @ivar terminal_width: The terminal's width in columns; L{None} when
        unknown, and then the input line is taken to fit.
    @ivar echo: Whether typed characters are shown (off for passwords).
    @ivar remember: Whether lines entered go into the history (only chat
        lines: never a password, nor an answer to a login question).
    """

    #: How many lines the history keeps.
    HISTORY_SIZE = 500

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self.terminal_width: int | None = None
        # Where the input line is on screen: the cursor's row in it, and
        # how many rows it takes.
        self._row = 0
        self._rows = 1
        self.prompt = ""
        # A line above the input line, rewritten in place (L{set_status}).
        self._status = ""
        self.echo = True
        self.remember = False
        self.lineBuffer: list[bytes] = []
        self.lineBufferIndex = 0
        self.historyLines: list[bytes] = []
        self.historyPosition = 0
        self._write: Callable[[bytes], object] | None = None
        self._closed = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._last_key: Any = None
        self._on_line: Callable[[str], object] = lambda line: None
        self._on_eof: Callable[[], object] = lambda: None
        self._completer: Callable[[str], list[str]] = lambda before: []
        self._hold: Callable[[str], bool] = lambda line: False

    # --- wiring ----------------------------------------------------------

    def attach(self, write: Callable[[bytes], object]) -> None:
        """
        Start writing through C{write} (the stdout transport's).
        """
        self._write = write

    def listen(
        self,
        on_line: Callable[[str], object],
        on_eof: Callable[[], object],
        completer: Callable[[str], list[str]],
        hold: Callable[[str], bool] = lambda line: False,
    ) -> None:
        """
        Say where entered lines go, what Ctrl-D on an empty line does, what
        Tab may complete (given the line up to the cursor), and which lines
        Enter leaves on the input line instead (while disconnected).
        """
        self._on_line = on_line
        self._on_eof = on_eof
        self._completer = completer
        self._hold = hold

    def connectionMade(self) -> None:
        """
        The terminal's keys start arriving: recvline's key table, plus the
        control keys people expect from a shell.
        """
        super().connectionMade()
        t = self.terminal
        del self.keyHandlers[t.INSERT]  # no typeover mode
        self.keyHandlers.update(
            {
                b"\x01": self.handle_HOME,
                b"\x02": self.handle_LEFT,
                b"\x04": self.handle_EOF,
                b"\x05": self.handle_END,
                b"\x06": self.handle_RIGHT,
                b"\x08": self.handle_BACKSPACE,
                b"\x0b": self.kill_to_end,
                b"\x0c": self.redraw,
                b"\x0e": self.handle_DOWN,
                b"\x10": self.handle_UP,
                b"\x15": self.kill_line,
                b"\x17": self.kill_word,
            }
        )

    def initializeScreen(self) -> None:
        """
        Leave the screen as it is (recvline would reset the terminal, which
        clears it, and switch on insert mode, which would outlive the
        client); the prompt is drawn when the session asks a question.
        """
        self.mode = "insert"

    # --- output ----------------------------------------------------------

    @property
    def text(self) -> str:
        """
        What has been typed so far.
        """
        return b"".join(self.lineBuffer).decode("utf-8")

    def _out(self, text: str) -> None:
        if self._write is not None:
            self._write(text.encode("utf-8", "replace"))

    def _layout(self) -> tuple[int, int]:
        """
        The columns the input line takes, and those before the cursor.
        """
        prompt = text_columns(self.prompt)
        if not self.echo:
            return prompt, prompt
        before = prompt + columns(self.lineBuffer[: self.lineBufferIndex])
        return before + columns(self.lineBuffer[self.lineBufferIndex :]), before

    def _fits(self) -> bool:
        return self.terminal_width is None or self._layout()[0] < self.terminal_width

    def _erase(self) -> str:
        """
        Go to the input line's first row and erase the line: that row, or
        everything below too when the line takes several.
        """
        rows = self._row + (1 if self._status else 0)
        up = f"\x1b[{rows}A" if rows else ""
        return up + ("\r\x1b[K" if self._rows == 1 and not self._status else "\r\x1b[J")

    def _input_line(self) -> str:
        """
        The prompt and the visible input, then the cursor moved back to its
        place in the line; notes where that leaves the cursor.
        """
        if self._closed:
            return ""
        total, cursor = self._layout()
        shown = self.prompt + (self.text if self.echo else "")
        if self._status:
            shown = f"{self._status}\r\n{shown}"
        if self.terminal_width is None or total < self.terminal_width:
            self._row, self._rows = 0, 1
            back = total - cursor
            return shown + (f"\x1b[{back}D" if back else "")
        # Past the last column the cursor waits for the next character
        # before it wraps; a line that ends there is wrapped at once.
        wrap = "\r\n" if total % self.terminal_width == 0 else ""
        last = total // self.terminal_width
        self._row, column = divmod(cursor, self.terminal_width)
        self._rows = last + 1
        up = last - self._row
        return (
            shown
            + wrap
            + (f"\x1b[{up}A" if up else "")
            + "\r"
            + (f"\x1b[{column}C" if column else "")
        )

    def show(self, text: str) -> None:
        """
        Print one line above the input line.
        """
        if self.interactive:
            self._out(f"{self._erase()}{text}\r\n{self._input_line()}")
        else:
            self._out(text + "\n")

    def resize(self, width: int | None) -> None:
        """
        The terminal is now C{width} columns wide: draw the input line
        again for it.
        """
        self.terminal_width = width
        self.redraw()

    def set_prompt(self, prompt: str, *, echo: bool = True) -> None:
        """
        Ask for the next line with C{prompt}; C{echo=False} hides the typing.
        """
        self.prompt = prompt
        self.echo = echo
        self.redraw()

    def set_status(self, status: str) -> None:
        """
        Show C{status} on a line of its own above the input line, in place
        of the one shown before: one line that says what is going on (the
        client reconnecting), rather than a line each time it changes.  An
        empty status removes the line.  Cut to the terminal's width, so
        that it takes one row.
        """
        if not self.interactive:
            return
        if self.terminal_width is not None and text_columns(status) >= self.terminal_width:
            status = status[: max(0, self.terminal_width - 2)] + "\u2026"
        erase = self._erase()
        self._status = status
        self._out(erase + self._input_line())

    def redraw(self) -> None:
        """
        Draw the input line again, e.g. after it was edited (Ctrl-L).
        """
        if self.interactive:
            self._out(self._erase() + self._input_line())

    def close(self) -> None:
        """
        Remove the input line for good: the session is over.
        """
        if self.interactive and not self._closed:
            self._out(self._erase())
        self._closed = True
        self._status = ""
        self._row, self._rows = 0, 1
        self.prompt = ""
        self.lineBuffer = []
        self.lineBufferIndex = 0

    # --- keys ------------------------------------------------------------

    def keystrokeReceived(self, keyID: bytes, modifier: object) -> None:
        """
        One key from the terminal: a byte of text (UTF-8, decoded here, as
        recvline takes printable ASCII only), or a key recvline names.
        Other controls and Alt combinations are dropped.
        """
        last, self._last_key = self._last_key, keyID
        if self._closed or modifier is not None:
            return
        if keyID == b"\n" and last == b"\r":
            return  # CR LF is one Enter
        if len(keyID) == 1 and (b" " <= keyID < b"\x7f" or keyID >= b"\x80"):
            chars = [c for c in self._decoder.decode(keyID) if not "\x7f" <= c <= "\x9f"]
            self._edit(lambda: self._deliverBuffer("".join(chars).encode("utf-8")))
            return
        handler = self.keyHandlers.get(keyID)
        if handler is None or not (self.echo or keyID in _BLIND_KEYS):
            return
        if keyID in _DIRECT_KEYS:
            handler()
        else:
            self._edit(handler)

    def _edit(self, action: Callable[[], object]) -> None:
        """
        Run an edit of the line.  recvline draws an edit as a small move on
        the cursor's row, right while the input line fits on one row; when
        it did not or does not any more, the line is drawn again whole.
        """
        write = self._write
        if self.terminal_width is None or write is None:
            action()
            return
        one_row, where = self._rows == 1, (self._row, self._rows)
        drawn: list[bytes] = []
        self._write = drawn.append
        transport, self.terminal.transport = self.terminal.transport, _Collector(drawn)
        try:
            action()
        finally:
            self._write, self.terminal.transport = write, transport
        if one_row and self._fits():
            if drawn:
                write(b"".join(drawn))
        else:
            self._row, self._rows = where
            self.redraw()

    def characterReceived(self, ch: bytes, moreCharactersComing: bool) -> None:
        """
        Insert one character at the cursor, and redraw what follows it
        (rather than rely on the terminal's insert mode).
        """
        tail = self.lineBuffer[self.lineBufferIndex :]
        self.lineBuffer.insert(self.lineBufferIndex, ch)
        self.lineBufferIndex += 1
        if self.interactive and self.echo and not self._closed and self._write is not None:
            self._write(ch + b"".join(tail))
            self._back(columns(tail))

    def _deliverBuffer(self, buf: bytes) -> None:
        """
        Put a line from the history in, by characters (recvline goes by
        bytes).
        """
        for char in buf.decode("utf-8", "replace"):
            self.characterReceived(char.encode("utf-8"), True)

    def _set_line(self, before: str, after: str) -> None:
        self.lineBuffer = [char.encode("utf-8") for char in before + after]
        self.lineBufferIndex = len(before)
        if self.echo:
            self.redraw()

    def _back(self, width: int) -> None:
        # Nothing moves on screen while the typing is hidden.
        if width and self.echo:
            self.terminal.cursorBackward(width)

    def _forward(self, width: int) -> None:
        if width and self.echo:
            self.terminal.cursorForward(width)

    def handle_LEFT(self) -> None:
        """
        One character left (recvline's, by columns).
        """
        if self.lineBufferIndex > 0:
            self.lineBufferIndex -= 1
            self._back(columns(self.lineBuffer[self.lineBufferIndex : self.lineBufferIndex + 1]))

    def handle_RIGHT(self) -> None:
        """
        One character right.
        """
        if self.lineBufferIndex < len(self.lineBuffer):
            self.lineBufferIndex += 1
            self._forward(columns(self.lineBuffer[self.lineBufferIndex - 1 : self.lineBufferIndex]))

    def handle_HOME(self) -> None:
        """
        To the start of the line.
        """
        self._back(columns(self.lineBuffer[: self.lineBufferIndex]))
        self.lineBufferIndex = 0

    def handle_END(self) -> None:
        """
        To the end of the line.
        """
        self._forward(columns(self.lineBuffer[self.lineBufferIndex :]))
        self.lineBufferIndex = len(self.lineBuffer)

    def handle_BACKSPACE(self) -> None:
        """
        Delete the character before the cursor.
        """
        if self.lineBufferIndex > 0:
            self.handle_LEFT()
            self._delete()

    def handle_DELETE(self) -> None:
        """
        Delete the character under the cursor.
        """
        if self.lineBufferIndex < len(self.lineBuffer):
            self._delete()

    def _delete(self) -> None:
        width = columns(self.lineBuffer[self.lineBufferIndex : self.lineBufferIndex + 1])
        del self.lineBuffer[self.lineBufferIndex]
        if width and self.echo:
            self.terminal.deleteCharacter(width)

    def kill_line(self) -> None:
        """
        Erase everything typed (Ctrl-U).
        """
        self.lineBuffer = []
        self.lineBufferIndex = 0
        self.redraw()

    def kill_word(self) -> None:
        """
        Erase the word before the cursor (Ctrl-W).
        """
        text, index = self.text, self.lineBufferIndex
        self._set_line(re.sub(r"\S*\s*$", "", text[:index]), text[index:])

    def kill_to_end(self) -> None:
        """
        Erase from the cursor to the end of the line (Ctrl-K).
        """
        del self.lineBuffer[self.lineBufferIndex :]
        self.terminal.eraseToLineEnd()

    def handle_EOF(self) -> None:
        """
        Ctrl-D: quit on an empty line, as a shell does; otherwise delete
        the character under the cursor.
        """
        if not self.lineBuffer:
            self._on_eof()
        elif self.echo:
            self._edit(self.handle_DELETE)

    def handle_UP(self) -> None:
        """
        The line before in the history (chat lines only).
        """
        if self.remember:
            super().handle_UP()

    def handle_DOWN(self) -> None:
        """
        The line after in the history, and past its end what was typed.
        """
        if self.remember:
            super().handle_DOWN()

    def handle_TAB(self) -> None:
        """
        Complete the word before the cursor: the rest of it when one word
        fits, what they share when several do, and the list of them when
        they share no more than what is typed.
        """
        before = self.text[: self.lineBufferIndex]
        choices = self._completer(before)
        if not choices:
            return
        addition = complete(before.split(" ")[-1], choices)
        if addition:
            self._edit(lambda: self._deliverBuffer(addition.encode("utf-8")))
        else:
            self.show("  ".join(choices))

    def handle_RETURN(self) -> None:
        """
        Hand the line over and start a new, empty one; a chat line goes
        into the history too (not twice in a row).
        """
        line = b"".join(self.lineBuffer)
        if self._hold(line.decode("utf-8")):
            return
        if self.remember and self.echo and line.strip() and self.historyLines[-1:] != [line]:
            self.historyLines.append(line)
            del self.historyLines[: -self.HISTORY_SIZE]
        self.historyPosition = len(self.historyLines)
        self.lineBuffer = []
        self.lineBufferIndex = 0
        self.redraw()
        self._on_line(line.decode("utf-8"))


@implementer(IHalfCloseableProtocol)
class ConsoleProtocol(Protocol):
    """
    Standard input and output.

    On a terminal the input arrives key by key (the terminal is in cbreak
    mode, see L{chat.client.terminal.TerminalMode}) and goes through
    insults' key parser to the L{Screen}, which edits the line.  From a
    pipe it arrives in LF-terminated lines.

    It is half-closeable so that the end of standard input does not close
    standard output: the last replies still have to be printed.

    @ivar closed: Fires when standard output is closed and flushed.
    """

    def __init__(self, client: ChatClient, screen: Screen, interactive: bool) -> None:
        self.client = client
        self.screen = screen
        self.interactive = interactive
        self.closed: Deferred[None] = Deferred()
        self._pipe_buffer = b""
        self._keys: insults.ServerProtocol | None = None
        screen.listen(client.user_line, client.user_eof, client.completions, client.holds)

    def connectionMade(self) -> None:
        """
        Route the screen's output to standard output, and on a terminal
        its keys to the screen.
        """
        assert self.transport is not None
        self.screen.attach(self.transport.write)
        if self.interactive:
            screen = self.screen
            self._keys = insults.ServerProtocol(lambda: screen)
            self._keys.makeConnection(self.transport)

    def dataReceived(self, data: bytes) -> None:
        """
        Turn input into keys, or into user lines.
        """
        if self._keys is not None:
            self._keys.dataReceived(data)
            return
        self._pipe_buffer += data
        *lines, self._pipe_buffer = self._pipe_buffer.split(b"\n")
        for line in lines:
            self._pipe_line(line)

    def _pipe_line(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        self.client.user_line(line.decode("utf-8", "replace"))

    def readConnectionLost(self) -> None:
        """
        Standard input ended: the last line may lack its LF.
        """
        if self._pipe_buffer:
            line, self._pipe_buffer = self._pipe_buffer, b""
            self._pipe_line(line)
        self.client.user_eof()

    def writeConnectionLost(self) -> None:
        """
        Standard output is gone: nothing is left to flush.
        """
        self.client.output_lost()
        if not self.closed.called:
            self.closed.callback(None)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Standard I/O is closed; everything written has been flushed.
        """
        if not self.closed.called:
            self.closed.callback(None)
