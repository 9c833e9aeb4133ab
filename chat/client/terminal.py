"""
The terminal's mode: cbreak while the client runs, the user's own while it
is stopped (Ctrl-Z) and after it ends.
"""

# test-case-name: tests.client.test_terminal

from __future__ import annotations

import fcntl
import os
import signal
import termios
from collections.abc import Callable
from typing import Any

__all__ = ["Suspension", "TerminalMode", "WidthWatch", "window_width"]


class TerminalMode:
    """
    Put the terminal in cbreak mode (no line buffering, no echo) for the
    session and restore it afterwards, whatever happens.

    The client echoes typed characters itself, which is how it can redraw
    the input line under incoming messages and how the password is never
    echoed.  Signals (Ctrl-C, Ctrl-Z) keep working.  The descriptor is
    duplicated so that restoring still works after StandardIO closed it,
    and the blocking flag, which StandardIO changes and which the shell
    shares, is put back too.
    """

    def __init__(self, fd: int) -> None:
        self._fd = os.dup(fd)
        self._saved = termios.tcgetattr(self._fd)
        self._flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
        self._restored = False

    def cbreak(self) -> None:
        """
        Switch off canonical mode and echo.
        """
        mode = termios.tcgetattr(self._fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO)
        cc = list(mode[6])
        cc[termios.VMIN] = 1
        cc[termios.VTIME] = 0
        mode[6] = cc
        termios.tcsetattr(self._fd, termios.TCSANOW, mode)

    def suspend(self) -> None:
        """
        Give the terminal back as the user had it, for the shell, while the
        client is stopped (Ctrl-Z); L{resume} takes it again.
        """
        if self._restored:
            return
        try:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            fcntl.fcntl(self._fd, fcntl.F_SETFL, self._flags)
        except (OSError, termios.error):
            pass

    def resume(self) -> None:
        """
        Back in the foreground (C{fg}): cbreak mode again, as the shell
        leaves the terminal as it likes it, echo on, and non-blocking again
        for StandardIO (the shell may have turned that off, as dash does
        after a C{kill -STOP}).
        """
        if self._restored:
            return
        try:
            self.cbreak()
            flags = fcntl.fcntl(self._fd, fcntl.F_GETFL)
            fcntl.fcntl(self._fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        except (OSError, termios.error):
            pass

    def restore(self) -> None:
        """
        Put the terminal back as it was; safe to call more than once.
        """
        if self._restored:
            return
        self._restored = True
        try:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            fcntl.fcntl(self._fd, fcntl.F_SETFL, self._flags)
        except (OSError, termios.error):
            pass
        finally:
            os.close(self._fd)


class Suspension:
    """
    Job control on a terminal: Ctrl-Z gives the user's terminal mode back
    before the client stops, and C{fg} takes cbreak mode (no echo) again
    and redraws the input line.  Without it the shell's mode stays after
    C{fg}, and whatever is typed next, a password included, is echoed.

    SIGTSTP is caught, so the client stops itself: the terminal is
    restored, the default action put back for a moment and the signal sent
    again.  SIGCONT, whatever stopped the client, resumes the terminal;
    the redraw goes through the reactor (C{callFromThread} is safe in a
    signal handler), which owns standard output.

    @ivar terminal: The terminal to give back and take again.
    """

    def __init__(
        self,
        terminal: TerminalMode,
        call_from_thread: Callable[..., object],
        redraw: Callable[[], None],
    ) -> None:
        self.terminal = terminal
        self._call_from_thread = call_from_thread
        self._redraw = redraw
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """
        Catch SIGTSTP and SIGCONT until L{uninstall}.
        """
        self._previous[signal.SIGTSTP] = signal.signal(signal.SIGTSTP, self._stop)
        self._previous[signal.SIGCONT] = signal.signal(signal.SIGCONT, self._continue)

    def uninstall(self) -> None:
        """
        Put back the handlers there were; before the terminal is restored
        for good, so that a late signal cannot take it again.
        """
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _stop(self, signum: int, frame: object) -> None:
        self.terminal.suspend()
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)
        # Stopped here until SIGCONT, whose handler redraws once this
        # returns; or not stopped at all, when the kernel ignores the stop
        # of an orphaned process group (no shell to resume it), and then
        # there is nothing to redraw but the terminal must be ours again.
        if self._previous:
            signal.signal(signal.SIGTSTP, self._stop)
        self.terminal.resume()

    def _continue(self, signum: int, frame: object) -> None:
        self.terminal.resume()
        self._call_from_thread(self._redraw)


def window_width(fd: int) -> int | None:
    """
    The width of the terminal on C{fd} in columns; L{None} when C{fd} is no
    terminal, or one that does not say.
    """
    try:
        return os.get_terminal_size(fd).columns or None
    except OSError:
        return None


class WidthWatch:
    """
    Tell the screen the terminal's width, at once and whenever it changes
    (SIGWINCH), so that a long input line is drawn where the terminal
    wraps it.  The signal handler only passes the news to the reactor
    (C{callFromThread} is safe there), which owns standard output.
    """

    def __init__(
        self,
        fd: int,
        call_from_thread: Callable[..., object],
        resize: Callable[[int | None], None],
    ) -> None:
        self._fd = fd
        self._call_from_thread = call_from_thread
        self._resize = resize
        self._previous: Any = None

    def install(self) -> None:
        """
        Give the width now, then catch SIGWINCH until L{uninstall}.
        """
        self._resize(window_width(self._fd))
        self._previous = signal.signal(signal.SIGWINCH, self._changed)

    def uninstall(self) -> None:
        """
        Put back the handler there was.
        """
        if self._previous is not None:
            signal.signal(signal.SIGWINCH, self._previous)
            self._previous = None

    def _changed(self, signum: int, frame: object) -> None:
        self._call_from_thread(self._resize, window_width(self._fd))
