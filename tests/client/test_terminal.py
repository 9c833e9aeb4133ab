"""
The terminal's mode, given back and taken again around Ctrl-Z and C{fg};
its width, followed when it changes.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import termios
from typing import Any

from chat.client import (
    Suspension,
    TerminalMode,
)
from chat.client.terminal import WidthWatch, window_width


def test_terminal_mode_is_given_back_and_taken_again() -> None:
    """
    Ctrl-Z gives the terminal back as the user had it, C{fg} (SIGCONT)
    takes cbreak mode again, and redraws through the reactor.
    """
    primary, secondary = os.openpty()
    try:

        def lflags() -> tuple[bool, bool]:
            mode = termios.tcgetattr(secondary)
            return bool(mode[3] & termios.ICANON), bool(mode[3] & termios.ECHO)

        terminal = TerminalMode(secondary)
        terminal.cbreak()
        assert lflags() == (False, False)
        terminal.suspend()
        assert lflags() == (True, True)
        redraws: list[Any] = []
        suspension = Suspension(terminal, redraws.append, lambda: None)
        suspension.install()
        try:
            os.kill(os.getpid(), signal.SIGCONT)
        finally:
            suspension.uninstall()
        assert lflags() == (False, False)
        assert fcntl.fcntl(secondary, fcntl.F_GETFL) & os.O_NONBLOCK
        assert len(redraws) == 1
        assert signal.getsignal(signal.SIGCONT) == signal.SIG_DFL
        terminal.restore()
        assert lflags() == (True, True)
        terminal.resume()
        assert lflags() == (True, True)
    finally:
        os.close(primary)
        os.close(secondary)


def test_the_width_is_given_at_once_and_when_it_changes() -> None:
    primary, secondary = os.openpty()
    pipe_read, pipe_write = os.pipe()

    def set_width(columns: int) -> None:
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))

    try:
        assert window_width(pipe_read) is None
        set_width(33)
        widths: list[int | None] = []
        calls: list[Any] = []
        watch = WidthWatch(secondary, lambda f, *a: calls.append((f, a)), widths.append)
        previous = signal.getsignal(signal.SIGWINCH)
        watch.install()
        try:
            assert widths == [33]
            set_width(50)
            os.kill(os.getpid(), signal.SIGWINCH)
        finally:
            watch.uninstall()
        assert calls == [(widths.append, (50,))]
        assert signal.getsignal(signal.SIGWINCH) == previous
    finally:
        for fd in (primary, secondary, pipe_read, pipe_write):
            os.close(fd)
