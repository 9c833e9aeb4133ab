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
    input line, which is then redrawn, so typing is never garbled.
  - With standard input a pipe (a script), the first lines answer the same
    questions in the same order (see C{docs/client.md}), every later line is
    sent as typed, and when the input ends the client sends C{/quit}, waits
    for the server's C{BYE} and exits 0.  It exits 1, with one line on
    stderr, when the server is unreachable, refuses the login or drops the
    connection.

The login always uses the explicit C{/login NAME PASSWORD} and
C{/register NAME PASSWORD} commands rather than the server's guided dialog:
one round trip, and the client alone decides what is echoed.  Every other
line is passed through unchanged, because the server already understands
the lobby shorthands (C{create <room>}, C{<room>}, C{exit}) and C{//text}.

Server lines are parsed with L{chat.lines.parse_line} and their timestamps
with L{chat.lines.parse_timestamp}, the same code the server formats them
with.
"""

# test-case-name: tests.test_client

from __future__ import annotations

import codecs
import enum
import fcntl
import ipaddress
import os
import re
import signal
import sys
import termios
import time
import warnings
import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from cryptography import x509
from OpenSSL import SSL
from OpenSSL.crypto import X509
from service_identity import VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    clientFromString,
    connectProtocol,
    wrapClientTLS,
)
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IHandshakeListener,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.ssl import Certificate, optionsForClientTLS, trustRootFromCertificates
from twisted.internet.stdio import StandardIO
from twisted.protocols.basic import LineReceiver
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

from chat import __version__
from chat.lines import ServerLine, parse_line, parse_timestamp

if TYPE_CHECKING:
    # Only named here: twisted.internet.ssl does not re-export it.
    from twisted.internet._sslverify import IOpenSSLTrustRoot

__all__ = [
    "CertificateNotForHost",
    "ChatClient",
    "ConsoleProtocol",
    "Options",
    "Outcome",
    "Pacer",
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

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
PROGRAM = "chatroom-client"

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


#: Seconds to wait for the server's HELLO once connected.
HELLO_TIMEOUT = 10.0


def _port_number(value: str) -> int:
    """
    C{--port}'s value: a port number, said in one line when it is not
    (Twisted's own coercion would say C{invalid literal for int()}).

    @raise usage.UsageError: C{value} is not a number from 1 to 65535.
    """
    if value.isascii() and value.isdigit() and 0 < int(value) < 65536:
        return int(value)
    raise usage.UsageError(f"--port: {value} is not a port number (1-65535)")


class Options(usage.Options):
    """
    Command line options of C{chatroom-client}.

    C{--host}/C{--port} cover the common case, with C{--tls} and C{--cafile}
    for TLS; C{--connect} takes any Twisted client endpoint string so that
    anything else (a UNIX socket, a client certificate with C{tls:}) works
    without new options.

    @ivar trust_root: The CAs of C{--cafile}, read when the options are
        parsed; L{None} means the system's trust store.
    """

    optFlags = [
        [
            "tls",
            None,
            "Use TLS, and verify the server's certificate and host name against "
            "the system's trusted CAs.",
        ],
    ]

    synopsis = f"Usage: {PROGRAM} [options]"
    longdesc = (
        "Chat on a chatroom server from a terminal, or drive it from a script "
        "through a pipe.  Connects to 127.0.0.1:5000 unless told otherwise."
    )
    optParameters = [
        ["host", "H", None, f"The server's host name or address [default: {DEFAULT_HOST}]."],
        ["port", "p", None, f"The server's TCP port [default: {DEFAULT_PORT}].", _port_number],
        [
            "connect",
            "c",
            None,
            "A Twisted client endpoint string, e.g. tcp:chat.example:5000, "
            "instead of --host/--port.",
        ],
        ["user", "u", None, "Your username; skips the username question."],
        [
            "cafile",
            None,
            None,
            "Trust the CA certificate(s) in this PEM file instead of the system's "
            "(a private CA); implies --tls.",
        ],
    ]

    trust_root: IOpenSSLTrustRoot | None = None

    def opt_version(self) -> NoReturn:
        """
        Display the chatroom version and exit.
        """
        print(f"{PROGRAM} {__version__}")
        sys.exit(0)

    def postOptions(self) -> None:
        """
        Reject combinations that would silently ignore something the user
        asked for.
        """
        if self["connect"] is not None and (self["host"] is not None or self["port"] is not None):
            raise usage.UsageError("use either --connect or --host/--port, not both")
        if self["connect"] is not None and (self["tls"] or self["cafile"] is not None):
            raise usage.UsageError(
                "--tls and --cafile go with --host/--port; with --connect, "
                "write tls:HOST:PORT (and :trustRoots=DIR for a private CA)"
            )
        if self["cafile"] is not None:
            self["tls"] = True
            self.trust_root = _load_cafile(self["cafile"])
        host = self["host"]
        if host is not None and (not host or re.search(r"\s", host)):
            raise usage.UsageError(f"--host: {host!r} is not a host name or address")
        user = self["user"]
        if user is not None and (not user or re.search(r"\s", user)):
            raise usage.UsageError(f"--user: {user!r} is not a username (one word)")
        if self["connect"] is not None:
            _check_endpoint(self["connect"])

    def parseArgs(self, *args: str) -> None:
        """
        Everything is an option: a stray word is most likely a value whose
        option was forgotten.
        """
        if args:
            raise usage.UsageError(f"unexpected argument {args[0]!r} (options start with --)")

    def address(self) -> str:
        """
        Where the client connects, for people: used in error messages.
        """
        if self["connect"] is not None:
            return str(self["connect"])
        host = self["host"] or DEFAULT_HOST
        port = self["port"] or DEFAULT_PORT
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def tls_host(self) -> str | None:
        """
        The host name (or address) the server's certificate must name when
        the connection uses TLS: C{--host} with C{--tls}, or the host of a
        C{tls:} or C{ssl:} endpoint string.  L{None} when there is none, and
        then a TLS connection is refused rather than left unchecked.
        """
        if self["connect"] is None:
            return (self["host"] or DEFAULT_HOST) if self["tls"] else None
        args, kwargs = _endpoint_fields(self["connect"])
        if args[0].lower() not in ("tls", "ssl"):
            return None
        host = kwargs.get("host") or (args[1] if len(args) > 1 else None)
        return host or None

    def endpoint(self, reactor: Any) -> IStreamClientEndpoint:
        """
        Build the endpoint to connect to.

        C{--host}/C{--port} use L{HostnameEndpoint}, which resolves names and
        handles IPv6 addresses that an endpoint string would need escaped.
        """
        if self["connect"] is not None:
            endpoint: IStreamClientEndpoint = clientFromString(reactor, self["connect"])
            return endpoint
        host = self["host"] or DEFAULT_HOST
        port = self["port"] or DEFAULT_PORT
        tcp = HostnameEndpoint(reactor, host, port, timeout=15)
        if not self["tls"]:
            return tcp
        # optionsForClientTLS checks the chain (None: the system's trust
        # store); ServerProtocol checks that the certificate names host.
        return wrapClientTLS(optionsForClientTLS(host, trustRoot=self.trust_root), tcp)


def _check_endpoint(description: str) -> None:
    """
    Parse C{--connect}'s endpoint string now (no reactor is needed for
    that), so that a typo is a usage error rather than a failed connection.

    @raise usage.UsageError: Twisted cannot make an endpoint of it.
    """
    try:
        with warnings.catch_warnings():
            # A HostnameEndpoint warns about the missing reactor, which is
            # only needed to connect.
            warnings.simplefilter("ignore", DeprecationWarning)
            clientFromString(None, description)
    except TypeError:
        detail = "missing or unknown arguments"
    except Exception as error:
        detail = " ".join(str(error).split()) or type(error).__name__
    else:
        return
    raise usage.UsageError(f"--connect: {description} is not a client endpoint string ({detail})")


def _endpoint_fields(description: str) -> tuple[list[str], dict[str, str]]:
    """
    Split an endpoint string as Twisted's C{clientFromString} does: fields
    separated by C{:}, C{key=value} fields as keywords, a backslash escaping
    the next character.  Only used to find the host of a TLS endpoint.
    """
    args: list[str] = []
    kwargs: dict[str, str] = {}
    field: list[str] = []
    current = ""
    chars = iter(description)
    for char in chars:
        if char == "\\":
            current += next(chars, "")
        elif char == ":" or (char == "=" and not field):
            field.append(current)
            current = ""
            if char == ":":
                if len(field) == 1:
                    args.append(field[0])
                else:
                    kwargs[field[0]] = field[1]
                field = []
        else:
            current += char
    field.append(current)
    if len(field) == 1:
        args.append(field[0])
    else:
        kwargs[field[0]] = field[1]
    return args, kwargs


class CertificateNotForHost(Exception):
    """
    The server's certificate does not name the host the client meant to
    reach, or names it in a way that cannot be read: refused like a
    certificate from an unknown CA.

    @ivar host: The host name or address that was looked for.
    @ivar detail: Why the certificate could not be read, if that was the
        problem (no subjectAltName, a malformed entry), else empty.
    """

    def __init__(self, host: str, detail: str = "") -> None:
        super().__init__(host, detail)
        self.host = host
        self.detail = detail


class _NoHostToCheck(Exception):
    """
    A TLS connection through an endpoint whose host the client does not
    know, so that it cannot check the certificate: refused.
    """


def check_certificate_host(certificate: X509 | x509.Certificate | None, host: str) -> None:
    """
    Check that C{certificate} names C{host}: an IP address entry of the
    subjectAltName for an address, a DNS entry for a name (the common name
    does not count).

    Every failure of the check, whatever the exception, is a refusal:
    Twisted 26.10's own check treats only L{VerificationError} as one and
    merely logs the L{service_identity.CertificateError} raised for a
    certificate with no subjectAltName, or with an address written as a DNS
    name, then lets the connection proceed.

    @raise CertificateNotForHost: The certificate does not name C{host}.
    """
    try:
        if certificate is None:
            raise ValueError("no certificate")
        if isinstance(certificate, X509):
            certificate = certificate.to_cryptography()
        try:
            ipaddress.ip_address(host)
        except ValueError:
            verify_certificate_hostname(certificate, host)
        else:
            verify_certificate_ip_address(certificate, host)
    except VerificationError:
        raise CertificateNotForHost(host) from None
    except Exception as error:
        detail = " ".join(str(error).split()).rstrip(".") or type(error).__name__
        raise CertificateNotForHost(host, detail) from None


def _load_cafile(path: str) -> IOpenSSLTrustRoot:
    """
    Read every certificate in the PEM file C{path} (a bundle may hold
    several CAs), so that a wrong path is a usage error now rather than a
    confusing verification failure later.

    @raise usage.UsageError: The file cannot be read or holds no certificate.
    """
    try:
        with open(path, "rb") as pem:
            data = pem.read()
    except OSError as error:
        raise usage.UsageError(f"--cafile: {path}: {error.strerror}") from None
    try:
        found = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise usage.UsageError(f"--cafile: {path} holds no PEM certificate") from None
    # trustRootFromCertificates is not annotated.
    root: IOpenSSLTrustRoot = trustRootFromCertificates(
        [Certificate(X509.from_cryptography(cert)) for cert in found]
    )
    return root


def _tls_failure(reason: Failure) -> str | None:
    """
    Say in words why a TLS connection failed, or return L{None} when
    C{reason} is not a TLS failure.

    A certificate that does not verify is the case people must be able to
    recognise (a private CA without C{--cafile}, a wrong host name, an
    attack); OpenSSL reports it as C{certificate verify failed}, and
    L{ServerProtocol} a wrong host name as a L{CertificateNotForHost}
    (Twisted's own check, as a L{VerificationError}).
    """
    if reason.check(_NoHostToCheck):
        return (
            "the server's certificate could not be checked: no host name to check it "
            "against (use --tls, or --connect tls:HOST:PORT)"
        )
    if reason.check(CertificateNotForHost):
        error = reason.value
        assert isinstance(error, CertificateNotForHost)
        detail = f" ({error.detail[:1].lower()}{error.detail[1:]})" if error.detail else ""
        return f"the server's certificate could not be verified: it is not for {error.host}{detail}"
    if reason.check(VerificationError):
        names = []
        for mismatch in getattr(reason.value, "errors", ()):
            wanted = mismatch.mismatched_id
            name = getattr(wanted, "hostname", None) or getattr(wanted, "ip", None)
            if isinstance(name, bytes):
                name = name.decode("ascii", "replace")
            if name is not None:
                names.append(str(name))
        what = " or ".join(names) or "this server"
        return f"the server's certificate could not be verified: it is not for {what}"
    if reason.check(SSL.Error):
        message = " ".join(str(reason.value).split())
        if "certificate verify failed" in message:
            return (
                "the server's certificate could not be verified: not issued by a "
                "trusted CA, or expired (--cafile trusts a private CA)"
            )
        return f"TLS handshake failed (is it a TLS port?): {message}"
    return None


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


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


# What the terminal's key handling drops (ConsoleProtocol._key): escape
# sequences as a whole, then every other control but TAB.
_TYPED_ESCAPE = re.compile(r"\x1b(?:[\[O][\x20-\x3f]*[\x40-\x7e]?|.?)", re.DOTALL)
_TYPED_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _typed(line: str) -> str:
    """
    A line read from a pipe as it would have been typed on a terminal, so
    that C{\\a/who} is the command C{/who} (and C{\\a/quit} a quit) for the
    client as it is for the server, rather than a message.
    """
    return _TYPED_CONTROL.sub("", _TYPED_ESCAPE.sub("", line))


def _clean(text: str) -> str:
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

    return _CONTROL.sub(replace, text)


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
        return self.style(f"? {_clean(raw)}", Style.YELLOW)

    def when(self, stamp: str) -> str:
        """
        A protocol timestamp in local time: the time of day alone when it is
        today, the date too otherwise (history can be days old).
        """
        try:
            seconds = parse_timestamp(stamp)
        except ValueError:
            return _clean(stamp)
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
        where = "" if room == self.room else f"#{_clean(room)} "
        name, text = _clean(user), _clean(line.text or "")
        style = self.style
        if history:
            return style(f"{when} {where}{name}: {text}", Style.DIM)
        name = style(name, Style.BOLD, style.name_colour(user))
        if user == self.me:
            text = style(text, Style.BOLD)
        return f"{style(when, Style.DIM)} {where}{name}: {text}"

    def _hello(self, line: ServerLine) -> list[str]:
        greeting = f": {_clean(line.text)}" if line.text else ""
        return [self.system(f"connected to {' '.join(map(_clean, line.args))}{greeting}")]

    def _prompt(self, line: ServerLine) -> list[str]:
        return [
            self.system(f"the server asks for {_clean(line.args[0])}: {_clean(line.text or '')}")
        ]

    def _ok(self, line: ServerLine) -> list[str]:
        command = line.args[0].lower() if line.args else ""
        what = _clean(line.args[1]) if len(line.args) > 1 else ""
        texts = {
            "login": f"logged in as {what}",
            "register": f"registered and logged in as {what}",
            "create": f"created room {what}",
            "join": f"joined {what}",
            "leave": f"left {what}",
        }
        text = texts.get(command) or "ok: " + " ".join(map(_clean, line.args))
        if line.text:
            text += f" ({_clean(line.text)})"
        return [self.system(text)]

    def _err(self, line: ServerLine) -> list[str]:
        code = _clean(line.args[0]) if line.args else "error"
        if line.text:
            return [self.error(f"{_clean(line.text)} ({code})")]
        return [self.error(code)]

    def _room(self, line: ServerLine) -> list[str]:
        self._rooms.append((_clean(line.args[0]), _clean(line.args[1])))
        return []

    def _member(self, line: ServerLine) -> list[str]:
        self._members.append(_clean(line.args[1]))
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
            room = _clean(line.args[1]) if len(line.args) > 1 else ""
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
            return [self.system(f"no messages in {_clean(room)} yet")]
        count = "1 message" if len(history) == 1 else f"{len(history)} messages"
        dim = Style.DIM
        lines = [self.style(f"--- history of {_clean(room)}: last {count} ---", dim)]
        lines += [self._message(item, history=True) for item in history]
        lines.append(self.style("--- end of history ---", dim))
        return lines

    def _msg(self, line: ServerLine) -> list[str]:
        return [self._message(line)]

    def _join(self, line: ServerLine) -> list[str]:
        room, stamp, user = line.args[:3]
        return [self.system(f"[{self.when(stamp)}] {_clean(user)} joined {_clean(room)}")]

    def _part(self, line: ServerLine) -> list[str]:
        room, stamp, user = line.args[:3]
        return [self.system(f"[{self.when(stamp)}] {_clean(user)} left {_clean(room)}")]

    def _info(self, line: ServerLine) -> list[str]:
        return [self.system(_clean(line.text or " ".join(line.args)))]

    def _bye(self, line: ServerLine) -> list[str]:
        return [self.system(f"bye: {_clean(line.text)}" if line.text else "bye")]


def _unparse(line: ServerLine) -> str:
    head = " ".join((line.tag, *line.args))
    return head if line.text is None else f"{head} :{line.text}"


class Screen:
    """
    The output side of the console, and the input line being typed.

    On a terminal (C{interactive}) the last line on screen is always the
    prompt plus what has been typed so far; L{show} erases it with
    C{\\r ESC [K}, prints the new line and redraws it, so incoming messages
    never garble the input.  Otherwise it just prints lines.

    @ivar echo: Whether typed characters are shown (off for passwords).
    """

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self.prompt = ""
        self.buffer = ""
        self.echo = True
        self._write: Callable[[bytes], object] | None = None
        self._closed = False

    def attach(self, write: Callable[[bytes], object]) -> None:
        """
        Start writing through C{write} (the stdout transport's).
        """
        self._write = write

    def _out(self, text: str) -> None:
        if self._write is not None:
            self._write(text.encode("utf-8", "replace"))

    def _input_line(self) -> str:
        if self._closed:
            return ""
        return self.prompt + (self.buffer if self.echo else "")

    def show(self, text: str) -> None:
        """
        Print one line above the input line.
        """
        if self.interactive:
            self._out(f"\r\x1b[K{text}\r\n{self._input_line()}")
        else:
            self._out(text + "\n")

    def set_prompt(self, prompt: str, *, echo: bool = True) -> None:
        """
        Ask for the next line with C{prompt}; C{echo=False} hides the typing.
        """
        self.prompt = prompt
        self.echo = echo
        self.redraw()

    def redraw(self) -> None:
        """
        Draw the input line again, e.g. after it was edited.
        """
        if self.interactive:
            self._out("\r\x1b[K" + self._input_line())

    def insert(self, text: str) -> None:
        """
        Add typed text at the end of the input line.
        """
        self.buffer += text
        if self.interactive and self.echo and not self._closed:
            self._out(text)

    def backspace(self) -> None:
        """
        Delete the last typed character.
        """
        if self.buffer:
            self.buffer = self.buffer[:-1]
            if self.echo:
                self.redraw()

    def kill_line(self) -> None:
        """
        Delete everything typed (Ctrl-U).
        """
        self.buffer = ""
        self.redraw()

    def kill_word(self) -> None:
        """
        Delete the last typed word (Ctrl-W).
        """
        self.buffer = re.sub(r"\S*\s*$", "", self.buffer)
        if self.echo:
            self.redraw()

    def take_line(self) -> str:
        """
        Return the typed line and start a new, empty one.
        """
        line, self.buffer = self.buffer, ""
        self.redraw()
        return line

    def close(self) -> None:
        """
        Remove the input line for good: the session is over.
        """
        if self.interactive and not self._closed:
            self._out("\r\x1b[K")
        self._closed = True
        self.prompt = self.buffer = ""


class Pacer:
    """
    A token bucket that keeps the client under the server's flood limit
    (10 lines a second, bursts of 20), so that a pasted block or a long
    script is sent a bit slower instead of being answered C{rate-limited}.
    The numbers are a little below the server's because lines that leave
    here spaced out can still arrive together.
    """

    def __init__(self, clock: IReactorTime, rate: float = 8.0, burst: int = 16) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = clock.seconds()

    def delay(self) -> float:
        """
        @return: 0 and use up a token if a line may be sent now, otherwise
            how many seconds to wait before asking again.
        """
        now = self._clock.seconds()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self._rate


class Phase(enum.Enum):
    """
    Where the client is in the session; what a line typed by the user
    means depends on it.
    """

    CONNECTING = "connecting"  # waiting for HELLO
    ASK_MODE = "ask-mode"  # "login or register?"
    ASK_USER = "ask-user"
    ASK_PASSWORD = "ask-password"
    ASK_CONFIRM = "ask-confirm"  # the password again, when registering
    AUTHENTICATING = "authenticating"  # /login or /register sent
    CHAT = "chat"  # logged in: lines go to the server
    QUITTING = "quitting"  # /quit sent or BYE seen, waiting for the close
    DONE = "done"


_ASKING = {Phase.ASK_MODE, Phase.ASK_USER, Phase.ASK_PASSWORD, Phase.ASK_CONFIRM}


@dataclass(frozen=True)
class Outcome:
    """
    How a session ended: the exit status and, for a failure, the one line
    to print on stderr.
    """

    code: int
    reason: str | None = None


class ChatClient:
    """
    The client's logic, between the console (lines the user types) and the
    server connection (lines the server sends), with no I/O of its own.

    User lines are queued and handled in order: the first ones answer the
    login questions, the rest are sent to the server once the login has
    succeeded (so a script can be written ahead of the replies).

    @ivar finished: Fires with an L{Outcome} when the session is over.
    """

    def __init__(
        self,
        screen: Screen,
        renderer: Renderer,
        clock: IReactorTime,
        *,
        interactive: bool,
        user: str | None = None,
        address: str = "the server",
    ) -> None:
        self.screen = screen
        self.renderer = renderer
        self.style = renderer.style
        self.clock = clock
        self.interactive = interactive
        self.address = address
        self.phase = Phase.CONNECTING
        self.finished: Deferred[Outcome] = Deferred()
        self._given_user = user
        self._username = user or ""
        self._password = ""
        self._mode = "login"
        self._pending: deque[str] = deque()
        self._eof = False
        self._server: ServerProtocol | None = None
        self._pacer = Pacer(clock)
        self._wakeup: IDelayedCall | None = None
        self._hello_timer: IDelayedCall | None = None
        self._quit_sent = False
        self._bye: str | None = None
        self._hinted: set[str] = set()
        self._help_wanted = 0

    # --- the server side -------------------------------------------------

    def server_connected(self, server: ServerProtocol) -> None:
        """
        The TCP connection is up; the questions wait for the server's HELLO,
        which a chatroom server sends at once.  A server that says nothing
        (a TLS port reached without --tls, say) would otherwise leave the
        user waiting forever.
        """
        self._server = server
        self._hello_timer = self.clock.callLater(HELLO_TIMEOUT, self._no_hello)

    def _no_hello(self) -> None:
        self._hello_timer = None
        if self.phase is Phase.CONNECTING:
            self._finish(
                1,
                f"{self.address} sent no greeting in {HELLO_TIMEOUT:g} s (a TLS port? try --tls)",
            )

    def connect_failed(self, reason: str) -> None:
        """
        The server could not be reached at all.
        """
        self._finish(1, f"cannot connect to {self.address}: {reason}")

    def server_line(self, raw: bytes) -> None:
        """
        Show one line from the server, then act on it.
        """
        if self.phase is Phase.DONE:
            return
        try:
            line: ServerLine | None = parse_line(raw)
        except ValueError:
            line = None
        if self.phase is Phase.CONNECTING and (
            line is None or line.tag != "HELLO" or line.args[:1] != ("chatroom",)
        ):
            self._finish(1, f"{self.address} is not a chatroom server")
            return
        if line is None:
            self.screen.show(self.renderer.unknown(raw.decode("utf-8", "replace")))
            return
        if self._help_wanted and line.tag == "INFO":
            return
        if self._help_wanted and line.tag == "END" and line.args[:1] == ("help",):
            self._help_wanted -= 1
            self._show_help()
            return
        for text in self.renderer.render(line):
            self.screen.show(text)
        if line.tag == "HELLO" and self.phase is Phase.CONNECTING:
            self._cancel_hello_timer()
            self._ask(Phase.ASK_MODE)
        elif line.tag == "OK":
            self._on_ok(line)
        elif line.tag == "ERR" and self.phase is Phase.AUTHENTICATING:
            self._on_login_refused(line)
        elif line.tag == "END" and line.args[:1] == ("rooms",) and self.renderer.room is None:
            self._hint(
                "lobby",
                'type a room name to join it, "create <room>" to make one, /help for all commands',
            )
        elif line.tag == "END" and line.args[:1] == ("history",):
            self._hint("room", "type to chat; /leave goes back to the lobby, exit quits")
        elif line.tag == "BYE":
            self._bye = line.text or ""
            self._set_phase(Phase.QUITTING)
        self._pump()

    def server_lost(self, reason: Failure) -> None:
        """
        The connection closed: the normal end after our C{/quit}, a failure
        otherwise.
        """
        self._server = None
        if self.phase is Phase.DONE:
            return
        tls_problem = _tls_failure(reason)
        if self.phase is Phase.CONNECTING and tls_problem is not None:
            self._finish(1, f"cannot connect to {self.address}: {tls_problem}")
        elif self._quit_sent:
            self._finish(0)
        elif self._bye is not None:
            said = f": {_clean(self._bye)}" if self._bye else ""
            self._finish(1, f"the server ended the session{said}")
        elif reason.check(ConnectionDone):
            self._finish(1, f"{self.address} closed the connection")
        else:
            message = " ".join(reason.getErrorMessage().split())
            self._finish(1, f"lost the connection to {self.address}: {message}")

    def _on_ok(self, line: ServerLine) -> None:
        command = line.args[0].lower() if line.args else ""
        name = line.args[1] if len(line.args) > 1 else None
        if command in ("login", "register") and self.phase is Phase.AUTHENTICATING:
            self.renderer.me = name or self._username
            self.renderer.room = None
            self._set_phase(Phase.CHAT)
        elif command == "join" and name is not None:
            self.renderer.room = name
            self._update_prompt()
        elif command == "leave":
            self.renderer.room = None
            self._update_prompt()

    def _on_login_refused(self, line: ServerLine) -> None:
        """
        On a terminal, ask again what was refused, as the server's guided
        dialog does: a refused registration password is asked for again
        (twice) rather than sending the user back to "login or register?",
        which echoes, where the next attempt would show in clear.
        """
        code = line.args[0] if line.args else "error"
        if self.interactive:
            if self._mode == "register" and code == "weak-password":
                self._ask(Phase.ASK_PASSWORD)
            elif self._mode == "register" and code in ("name-taken", "bad-name"):
                self._ask(Phase.ASK_USER if self._given_user is None else Phase.ASK_MODE)
            else:
                self._ask(Phase.ASK_MODE)
            return
        said = f"{_clean(line.text)} " if line.text else ""
        self._finish(1, f"login refused: {said}({_clean(code)})")

    # --- the user side ---------------------------------------------------

    def user_line(self, line: str) -> None:
        """
        The user typed a line (or the script gave one).
        """
        if self.phase in (Phase.QUITTING, Phase.DONE):
            return
        self._pending.append(line)
        self._pump()

    def user_eof(self) -> None:
        """
        Standard input ended (or Ctrl-D on an empty line): finish what was
        typed, then quit.
        """
        self._eof = True
        self._pump()

    def output_lost(self) -> None:
        """
        Nobody reads our output any more (e.g. C{| head}): stop quietly.
        """
        self._finish(0)

    # --- internals -------------------------------------------------------

    def _send(self, line: str) -> None:
        if self._server is not None:
            self._server.sendLine(line.encode("utf-8"))

    def _prompt_text(self) -> str:
        if self.phase is Phase.ASK_MODE:
            return "login or register? "
        if self.phase is Phase.ASK_USER:
            return "username: "
        if self.phase is Phase.ASK_PASSWORD:
            return "password: "
        if self.phase is Phase.ASK_CONFIRM:
            return "password again: "
        if self.phase is Phase.CHAT:
            return f"{self.renderer.room or 'lobby'}> "
        return ""

    def _set_phase(self, phase: Phase) -> None:
        self.phase = phase
        self._update_prompt()

    def _update_prompt(self) -> None:
        echo = self.phase not in (Phase.ASK_PASSWORD, Phase.ASK_CONFIRM)
        self.screen.set_prompt(self.style(self._prompt_text(), Style.BOLD), echo=echo)

    def _ask(self, phase: Phase) -> None:
        if phase is Phase.ASK_USER and self._given_user is not None:
            phase = Phase.ASK_PASSWORD
        self._set_phase(phase)

    def _echo(self, text: str) -> None:
        """
        Leave what the user answered or commanded visible, as a shell does.
        """
        if self.interactive:
            self.screen.show(self.style(self._prompt_text(), Style.BOLD) + text)

    def _show_help(self) -> None:
        for text in HELP.splitlines():
            self.screen.show(self.renderer.system(text))

    def _complain(self, text: str) -> None:
        self.screen.show(self.renderer.error(text))

    def _hint(self, key: str, text: str) -> None:
        """
        Say what to do next, once per kind of situation, to people only.
        """
        if self.interactive and key not in self._hinted and self.phase is Phase.CHAT:
            self._hinted.add(key)
            self.screen.show(self.renderer.system(text))

    def _pump(self) -> None:
        """
        Handle queued user lines for as long as the phase allows.
        """
        while self._pending and self.phase is not Phase.DONE:
            if self.phase in _ASKING:
                self._answer(self._pending.popleft())
            elif self.phase is Phase.CHAT:
                if self._wakeup is not None:
                    return
                if self._pending[0].strip():
                    delay = self._pacer.delay()
                    if delay > 0:
                        self._wakeup = self.clock.callLater(delay, self._wake)
                        return
                self._command(self._pending.popleft())
            elif self.phase is Phase.QUITTING:
                self._pending.clear()
            else:
                return
        if self._eof and not self._pending:
            self._input_done()

    def _wake(self) -> None:
        self._wakeup = None
        self._pump()

    def _input_done(self) -> None:
        if self.phase is Phase.CHAT or (self.phase in _ASKING and self.interactive):
            self._quit()
        elif self.phase in _ASKING:
            self._finish(1, "standard input ended before the login was complete")

    def _quit(self) -> None:
        self._send("/quit")
        self._quit_sent = True
        self._set_phase(Phase.QUITTING)

    def _answer(self, line: str) -> None:
        """
        Take C{line} as the answer to the question being asked.
        """
        phase = self.phase
        if phase is Phase.ASK_MODE:
            self._answer_mode(line)
        elif phase is Phase.ASK_USER:
            name = line.strip()
            self._echo(name)
            if not name or re.search(r"\s", name):
                self._refuse("a username is one word")
                return
            self._username = name
            self._ask(Phase.ASK_PASSWORD)
        elif phase is Phase.ASK_PASSWORD:
            self._echo("")
            if not line:
                self._refuse("the password is empty")
            elif self._mode == "register" and self.interactive:
                self._password = line
                self._set_phase(Phase.ASK_CONFIRM)
            else:
                self._authenticate(line)
        elif phase is Phase.ASK_CONFIRM:
            self._echo("")
            if line != self._password:
                self._password = ""
                self._complain("the two passwords differ; try again")
                self._set_phase(Phase.ASK_PASSWORD)
            else:
                self._authenticate(line)

    def _answer_mode(self, line: str) -> None:
        word = line.strip()
        lowered = word.lower()
        verb = lowered.split(" ", 1)[0]
        if verb in ("/login", "/register") and " " in word:
            # An explicit command is passed through; echo it without the
            # password.
            self._echo(" ".join(word.split(" ")[:2]))
            self._mode = verb[1:]
            self._username = word.split(" ")[1]
            self._send(line)
            self._set_phase(Phase.AUTHENTICATING)
            return
        self._echo(word)
        if not word:
            self.screen.redraw()
        elif lowered in ("login", "l", "register", "r"):
            self._mode = "register" if lowered.startswith("r") else "login"
            self._ask(Phase.ASK_USER)
        elif lowered in ("exit", "/quit"):
            self._quit()
        elif lowered == "/help":
            self._show_help()
            self.screen.redraw()
        else:
            self._refuse('please answer "login" or "register"')

    def _refuse(self, problem: str) -> None:
        """
        A bad answer: ask again on a terminal, give up in a script (whose
        next lines would all be answers to the wrong questions).
        """
        if self.interactive:
            self._complain(problem)
            self.screen.redraw()
        else:
            self._finish(1, f"bad login input: {problem}")

    def _authenticate(self, password: str) -> None:
        self._password = ""
        self._set_phase(Phase.AUTHENTICATING)
        self._send(f"/{self._mode} {self._username} {password}")

    def _command(self, line: str) -> None:
        """
        Send a line typed after the login, except what the client itself
        answers (C{/help}).  Control characters are dropped first: what the
        line is depends on what is left.
        """
        line = _typed(line)
        stripped = line.strip()
        if not stripped:
            return
        words = stripped.split()
        verb = words[0].lower()
        quits = (verb == "/quit" and len(words) == 1) or stripped == "exit"
        is_message = (
            self.renderer.room is not None
            and not quits
            and (not verb.startswith("/") or verb.startswith("//"))
        )
        if not is_message:
            # The server's MSG shows a message again, with its time; anything
            # else stays on screen as typed.
            self._echo(line)
        if verb == "/help" and len(words) == 1:
            # Shown when the server's END help arrives, so that in a script
            # it comes after the replies to the lines sent before it.
            self._help_wanted += 1
            self._send("/help")
            return
        self._send(line)
        if quits:
            # The server answers BYE and closes; later input is moot.
            self._quit_sent = True
            self._set_phase(Phase.QUITTING)

    def _cancel_hello_timer(self) -> None:
        if self._hello_timer is not None and self._hello_timer.active():
            self._hello_timer.cancel()
        self._hello_timer = None

    def _finish(self, code: int, reason: str | None = None) -> None:
        if self.phase is Phase.DONE:
            return
        self.phase = Phase.DONE
        self._cancel_hello_timer()
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup = None
        self._pending.clear()
        self.screen.close()
        if self._server is not None and self._server.transport is not None:
            self._server.transport.loseConnection()
        self.finished.callback(Outcome(code, reason))


@implementer(IHandshakeListener)
class ServerProtocol(LineReceiver):
    """
    The connection to the server: LF-terminated lines in both directions.

    Over TLS it also checks that the server's certificate names the host,
    twice over: its own certificate callback replaces Twisted's (which lets
    some malformed certificates through, see L{check_certificate_host}) so
    that a bad certificate fails the handshake, and the certificate is
    checked again when the handshake completes, before any line from the
    server is read; the client sends nothing before the server's HELLO.

    @ivar tls_host: What the certificate must name (L{Options.tls_host}).
    """

    delimiter = b"\n"
    # Server lines are at most a 2048-byte message plus a few words; this
    # only guards against something that is not a chatroom server.
    MAX_LENGTH = 1 << 20

    def __init__(self, client: ChatClient, tls_host: str | None = None) -> None:
        self.client = client
        self.tls_host = tls_host
        self._refused: Failure | None = None

    def connectionMade(self) -> None:
        """
        Take over the certificate check of a TLS connection (whose
        handshake starts once this returns), and disable Nagle: chat lines
        are tiny and latency is what people see.
        """
        get_handle = getattr(self.transport, "getHandle", None)
        handle = get_handle() if get_handle is not None else None
        if isinstance(handle, SSL.Connection):
            handle.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verify)
        set_no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        self.client.server_connected(self)

    def _verify(
        self, connection: SSL.Connection, cert: X509, error: int, depth: int, ok: int
    ) -> bool:
        """
        OpenSSL's certificate callback: keep its verdict on the chain, and
        check the server's own certificate (depth 0) for the host.  Nothing
        may be raised here (OpenSSL would lose it), so any problem is a
        refusal.
        """
        if not ok:
            return False
        if depth != 0:
            return True
        try:
            self._check(cert)
        except Exception:
            self._refused = Failure()
            fail = getattr(self.transport, "failVerification", None)
            if fail is not None:
                fail(self._refused)
            return False
        return True

    def _check(self, cert: X509 | None) -> None:
        if self.tls_host is None:
            raise _NoHostToCheck()
        check_certificate_host(cert, self.tls_host)

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake is over and no data has been read yet: check the
        certificate once more, and drop the connection if it does not name
        the host.
        """
        get_peer_certificate = getattr(self.transport, "getPeerCertificate", None)
        try:
            if get_peer_certificate is None:
                raise _NoHostToCheck()
            self._check(get_peer_certificate())
        except Exception:
            self._refused = Failure()
            assert self.transport is not None
            abort = getattr(self.transport, "abortConnection", self.transport.loseConnection)
            abort()

    def dataReceived(self, data: bytes) -> None:
        """
        Read nothing from a server whose certificate was refused.
        """
        if self._refused is None:
            super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        """
        Hand each server line to the client.
        """
        self.client.server_line(line)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        Tell the client, which decides whether this was expected.
        """
        self.client.server_lost(self._refused or reason)


@implementer(IHalfCloseableProtocol)
class ConsoleProtocol(Protocol):
    """
    Standard input and output.

    On a terminal the input arrives key by key (the terminal is in cbreak
    mode, see L{TerminalMode}) and is edited here: printable characters,
    Backspace, Ctrl-U, Ctrl-W, Enter, and Ctrl-D on an empty line to quit;
    escape sequences (arrow keys) are ignored.  From a pipe it arrives in
    LF-terminated lines.

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
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._escape = ""
        self._last = ""

    def connectionMade(self) -> None:
        """
        Route the screen's output to standard output.
        """
        assert self.transport is not None
        self.screen.attach(self.transport.write)

    def dataReceived(self, data: bytes) -> None:
        """
        Turn input into user lines.
        """
        if self.interactive:
            for char in self._decoder.decode(data):
                self._key(char)
            return
        self._pipe_buffer += data
        *lines, self._pipe_buffer = self._pipe_buffer.split(b"\n")
        for line in lines:
            self._pipe_line(line)

    def _pipe_line(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        self.client.user_line(line.decode("utf-8", "replace"))

    def _key(self, char: str) -> None:
        last, self._last = self._last, char
        if self._escape:
            # ESC, then "[" or "O", then parameters, then a final byte.
            self._escape += char
            if len(self._escape) == 2 and char not in "[O":
                self._escape = ""
            elif len(self._escape) > 2 and "\x40" <= char <= "\x7e":
                self._escape = ""
            return
        if char == "\x1b":
            self._escape = char
        elif char in "\r\n":
            if char == "\n" and last == "\r":
                return
            self.client.user_line(self.screen.take_line())
        elif char in "\x7f\x08":
            self.screen.backspace()
        elif char == "\x15":
            self.screen.kill_line()
        elif char == "\x17":
            self.screen.kill_word()
        elif char == "\x0c":
            self.screen.redraw()
        elif char == "\x04":
            if not self.screen.buffer:
                self.client.user_eof()
        elif char == "\t":
            self.screen.insert(" ")
        elif char >= " " and not "\x80" <= char <= "\x9f":
            self.screen.insert(char)

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
    try:
        style = Style(use_colour(1, os.environ))
        screen = Screen(interactive)
        if terminal is not None:
            suspension = Suspension(terminal, reactor.callFromThread, screen.redraw)
            suspension.install()
        renderer = Renderer(style, reactor.seconds)
        client = ChatClient(
            screen,
            renderer,
            reactor,
            interactive=interactive,
            user=options["user"],
            address=options.address(),
        )
        console = ConsoleProtocol(client, screen, interactive)
        stdio = StandardIO(console, reactor=reactor)
        if interactive:
            screen.show(renderer.system(f"connecting to {options.address()}..."))
        try:
            server = ServerProtocol(client, options.tls_host())
            await connectProtocol(options.endpoint(reactor), server)
        except Exception as error:
            message = " ".join(str(error).split()) or type(error).__name__
            client.connect_failed(message)
        outcome = await client.finished
        stdio.loseConnection()
        await console.closed
        return outcome
    finally:
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


if __name__ == "__main__":
    main()
