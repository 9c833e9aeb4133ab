"""
The terminal's mode, given back and taken again around Ctrl-Z and C{fg}.
"""

from __future__ import annotations

import fcntl
import os
import signal
import termios
from typing import Any

from chat.client import (
    Suspension,
    TerminalMode,
)


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
