"""
The C{chatroom-client} entry point: parse the options, wire the pieces
together on the reactor, turn the outcome into an exit status.
"""

# test-case-name: tests.client.test_options

from __future__ import annotations

import os
import sys
import termios
from collections.abc import Sequence
from typing import Any, NoReturn

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import connectProtocol
from twisted.internet.stdio import StandardIO
from twisted.python import usage

from chat.client.connection import ServerProtocol
from chat.client.console import ConsoleProtocol, Screen
from chat.client.options import PROGRAM, Options
from chat.client.render import Renderer, Style, use_colour
from chat.client.session import ChatClient, Outcome
from chat.client.terminal import Suspension, TerminalMode, WidthWatch

__all__ = ["main", "run"]


async def run(reactor: Any, options: Options) -> Outcome:
    """
    Run one session on the console; the caller turns the outcome into an
    exit status.

    @param reactor: Used for the connection, standard I/O and the clock;
        passed in so that only L{main} touches the global reactor.
    @return: How the session ended, once standard output has been flushed.
    """
    interactive = os.isatty(0)
    terminal: TerminalMode | None = None
    if interactive:
        try:
            terminal = TerminalMode(0)
            terminal.cbreak()
        except (OSError, termios.error):
            terminal = None
            interactive = False
        if terminal is not None:
            reactor.addSystemEventTrigger("before", "shutdown", terminal.restore)
    suspension: Suspension | None = None
    width_watch: WidthWatch | None = None
    try:
        style = Style(use_colour(1, os.environ))
        screen = Screen(interactive)
        if terminal is not None:
            suspension = Suspension(terminal, reactor.callFromThread, screen.redraw)
            suspension.install()
            width_watch = WidthWatch(0, reactor.callFromThread, screen.resize)
            width_watch.install()
        renderer = Renderer(style, reactor.seconds)

        def connect() -> Deferred[Any]:
            # Every connection, the first and any reconnection, is made the
            # same way, to the same server with the same checks.
            server = ServerProtocol(client, options.tls_host())
            connected: Deferred[Any] = connectProtocol(options.endpoint(reactor), server)
            return connected

        client = ChatClient(
            screen,
            renderer,
            reactor,
            interactive=interactive,
            user=options["user"],
            address=options.address(),
            # A script wants its exit status, not a reconnection.
            connect=connect if interactive else None,
        )
        console = ConsoleProtocol(client, screen, interactive)
        stdio = StandardIO(console, reactor=reactor)
        if interactive:
            screen.show(renderer.system(f"connecting to {options.address()}..."))
        try:
            await connect()
        except Exception as error:
            message = " ".join(str(error).split()) or type(error).__name__
            client.connect_failed(message)
        outcome = await client.finished
        stdio.loseConnection()
        await console.closed
        return outcome
    finally:
        if width_watch is not None:
            width_watch.uninstall()
        if suspension is not None:
            suspension.uninstall()
        if terminal is not None:
            terminal.restore()


async def _main(reactor: Any, options: Options) -> None:
    outcome = await run(reactor, options)
    if outcome.reason:
        sys.stderr.write(f"{PROGRAM}: {outcome.reason}\n")
        sys.stderr.flush()
    raise SystemExit(outcome.code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """
    The C{chatroom-client} console script.

    Options are parsed before the reactor starts so that C{--help} and
    usage errors need no event loop; a usage error is one line on stderr
    (the help is one C{--help} away) and exit status 2.
    """
    options = Options()
    try:
        options.parseOptions(list(sys.argv[1:] if argv is None else argv))
    except usage.UsageError as error:
        message = " ".join(str(error).split())
        sys.stderr.write(f"{PROGRAM}: {message}; see --help\n")
        sys.exit(2)
    task.react(_main, (options,))
