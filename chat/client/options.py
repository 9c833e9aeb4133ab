"""
The client's command line: where to connect, how to check TLS, who to be.

Everything is checked while the options are parsed, before the reactor
runs, so that a mistake is one line and exit status 2 rather than a failed
connection.
"""

# test-case-name: tests.client.test_options

from __future__ import annotations

import re
import sys
import warnings
from typing import TYPE_CHECKING, Any, NoReturn

from cryptography import x509
from OpenSSL.crypto import X509
from twisted.internet.endpoints import HostnameEndpoint, clientFromString, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.ssl import Certificate, optionsForClientTLS, trustRootFromCertificates
from twisted.python import usage

from chat import __version__

if TYPE_CHECKING:
    # Only named here: twisted.internet.ssl does not re-export it.
    from twisted.internet._sslverify import IOpenSSLTrustRoot

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "PROGRAM", "Options"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
PROGRAM = "chatroom-client"


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
