"""
The bundled stdio client: C{chatroom-client}, or C{python -m chat.client}.

It exists so that a person can chat without typing protocol lines into
C{nc}, and so that a script can drive a chat session through a pipe:

  - It speaks TLS when asked (C{--tls}, C{--cafile}, or a C{tls:} endpoint
    string), and then refuses a server whose certificate does not verify,
    before anything (a password above all) is sent.
  - On a terminal it asks "login or register?", the username and the
    password (never echoed), then shows the room list; the user types a room
    name, C{create <room>} or C{/help}.  Incoming lines are printed above the
    input line, which is then redrawn, so typing is never garbled.  The
    input line has a history (Up, Down), a cursor (Left, Right, Home, End)
    and Tab completion of commands, room names and user names.
  - C{/dm <user>} turns the input into a conversation with one user (the
    prompt says C{to <user>>}) until C{/room}; private messages read
    C{alice \u2192 you}, and those missed while away are shown at login.
    C{/history} alone pages back through the room or conversation.
  - On a terminal it keeps a session token in memory, and when the
    connection drops (a server restart, the network) it reconnects by
    itself with backoff and jitter, resumes the session with the token
    (no password asked), rejoins its room and shows what was missed; one
    status line, rewritten in place, says what is going on meanwhile.
    C{/password} asks both passwords blind before it starts the server's
    dialog.
  - With standard input a pipe (a script), the first lines answer the same
    questions in the same order (see C{docs/client.md}), every later line is
    sent as typed, and when the input ends the client sends C{/quit}, waits
    for the server's C{BYE} and exits 0.  It exits 1, with one line on
    stderr, when the server is unreachable, refuses the login or drops the
    connection (a script is never reconnected: it wants its exit status).

The login always uses the explicit C{/login NAME PASSWORD} and
C{/register NAME PASSWORD} commands rather than the server's guided dialog:
one round trip, and the client alone decides what is echoed.  Every other
line is passed through unchanged, because the server already understands
the lobby shorthands (C{create <room>}, C{<room>}, C{exit}) and C{//text}.

Server lines are parsed with L{chat.lines.parse_line} and their timestamps
with L{chat.lines.parse_timestamp}, the same code the server formats them
with.

The package, one module per concern:

  - L{chat.client.options}: the command line;
  - L{chat.client.session}: what the lines mean, with no I/O (L{ChatClient});
  - L{chat.client.commands}: what the user can type (help, Tab completion);
  - L{chat.client.render}: server lines as a person reads them;
  - L{chat.client.console}: standard I/O and the line editor;
  - L{chat.client.terminal}: the terminal's mode, and Ctrl-Z;
  - L{chat.client.connection} and L{chat.client.tls}: the server connection
    and its certificate checks;
  - L{chat.client.cli}: the entry point, L{main}.
"""

# test-case-name: tests.client

from chat.client.cli import main, run
from chat.client.commands import HELP
from chat.client.connection import ServerProtocol
from chat.client.console import ConsoleProtocol, Screen
from chat.client.options import Options
from chat.client.render import MISSED_WINDOW, Renderer, Style, use_colour
from chat.client.session import ChatClient, Outcome, Phase
from chat.client.terminal import Suspension, TerminalMode
from chat.client.tls import CertificateNotForHost, check_certificate_host

__all__ = [
    "HELP",
    "MISSED_WINDOW",
    "CertificateNotForHost",
    "ChatClient",
    "ConsoleProtocol",
    "Options",
    "Outcome",
    "Phase",
    "Renderer",
    "Screen",
    "ServerProtocol",
    "Style",
    "Suspension",
    "TerminalMode",
    "check_certificate_host",
    "main",
    "run",
    "use_colour",
]
