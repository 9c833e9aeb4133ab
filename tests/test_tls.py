"""
TLS end to end: the real server listening on C{ssl:} endpoints next to a
plain C{tcp:} one, the real client (C{--tls}, C{--cafile}, C{--connect tls:})
through a pipe, and a raw TLS socket from the C{ssl} module, which checks
the server side without trusting the client's code.

The certificates come from a throw-away CA (L{tests.certs}), so no test can
pass by accident through the system's trust store.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from twisted.internet.endpoints import quoteStringArgument
from twisted.python import usage

from chat.client import Options
from tests.certs import CertificateFiles, write_certificates
from tests.conftest import ROOT, TWISTD, chatroom_args

TIMEOUT = 10
# One line per --port, in --port order; Twisted marks the TLS ones.
_LISTENING = re.compile(r"ChatFactory( \(TLS\))? starting on (\d+)")
_NOT_VERIFIED = "the server's certificate could not be verified"


@dataclass(frozen=True)
class Ports:
    """
    Where the test server listens, all on 127.0.0.1.
    """

    tcp: int
    tls: int  # certificate for localhost and 127.0.0.1, from certs.ca
    tls_localhost: int  # certificate for localhost only, from localhost_certs.ca
    tls_no_san: int  # CN=other.example and no subjectAltName, from no_san_certs.ca
    tls_dns_address: int  # DNS:localhost, DNS:127.0.0.1, from dns_address_certs.ca


@dataclass(frozen=True)
class TLSServer:
    """
    A running server and the certificates its TLS ports use.
    """

    ports: Ports
    certs: CertificateFiles
    localhost_certs: CertificateFiles
    no_san_certs: CertificateFiles
    dns_address_certs: CertificateFiles


def _ssl_port(files: CertificateFiles) -> str:
    """
    An C{ssl:} server endpoint string on a free loopback port; the paths are
    quoted because a colon in them would end the argument.
    """
    return (
        "ssl:0:interface=127.0.0.1"
        f":privateKey={quoteStringArgument(str(files.key))}"
        f":certKey={quoteStringArgument(str(files.cert))}"
    )


def _start(data: Path, *tls_certs: CertificateFiles) -> tuple[subprocess.Popen[str], Ports]:
    """
    Launch C{twistd -n chatroom} as C{tests.conftest.ServerProcess} does, but
    on a plain port and one TLS port per C{tls_certs}, and wait until it
    answers.

    ServerProcess cannot be reused: it adds its own C{--port}, keeps only the
    first port logged, and probes with a plain connection.  Here the probe
    goes to the plain TCP port, which is enough: all ports are listening
    before the reactor runs, and a HELLO proves it is running.
    """
    process = subprocess.Popen(
        [
            *TWISTD,
            *chatroom_args(
                data,
                *(arg for files in tls_certs for arg in ("--port", _ssl_port(files))),
                "--bcrypt-rounds",
                "4",
            ),
        ],
        cwd=data.parent,
        env=dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    found: queue.Queue[tuple[bool, int]] = queue.Queue()

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            match = _LISTENING.search(line)
            if match:
                found.put((match.group(1) is not None, int(match.group(2))))

    threading.Thread(target=drain, daemon=True).start()
    listening = []
    try:
        for _ in range(1 + len(tls_certs)):
            listening.append(found.get(timeout=30))
    except queue.Empty:
        process.kill()
        process.wait(TIMEOUT)
        raise RuntimeError("server did not start:\n" + "\n".join(output)) from None
    # --port order is kept: the plain port first, then the TLS ones.
    assert [tls for tls, _ in listening] == [False] + [True] * len(tls_certs), output
    ports = Ports(*(port for _, port in listening))
    with socket.create_connection(("127.0.0.1", ports.tcp), timeout=TIMEOUT) as probe:
        assert probe.makefile("rb").readline().startswith(b"HELLO chatroom 1 ")
    return process, ports


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSServer]:
    """
    One server for the whole module (starting one takes about a second);
    tests use user names of their own.
    """
    base = tmp_path_factory.mktemp("tls")
    certs = write_certificates(base / "certs")
    localhost_certs = write_certificates(base / "localhost-certs", ["localhost"])
    no_san_certs = write_certificates(base / "no-san-certs", [], common_name="other.example")
    dns_address_certs = write_certificates(
        base / "dns-address-certs", ["localhost", "127.0.0.1"], addresses_as_dns=True
    )
    all_certs = (certs, localhost_certs, no_san_certs, dns_address_certs)
    process, ports = _start(base / "data", *all_certs)
    try:
        yield TLSServer(ports, *all_certs)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(TIMEOUT)


def run_client(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """
    C{python -m chat.client ARGS} with C{script} on its standard input (a
    pipe, so it runs in script mode), to the end, within L{TIMEOUT}.
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("NO_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "chat.client", *args],
        input=script,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=TIMEOUT,
    )


def assert_refused(result: subprocess.CompletedProcess[str], reason: str) -> None:
    """
    The client gave up before the server's HELLO, hence before sending the
    login: exit 1, one line on stderr, no traceback.
    """
    assert result.returncode == 1, result
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("chatroom-client: cannot connect to "), result.stderr
    assert reason in result.stderr
    assert "connected to chatroom" not in result.stdout
    assert "logged in" not in result.stdout


def test_client_with_cafile_logs_in_and_chats(tls_server: TLSServer) -> None:
    result = run_client(
        "register\ntls-alice\npassword1\ncreate secure\nhello over TLS\n",
        "--host",
        "localhost",
        "--port",
        str(tls_server.ports.tls),
        "--cafile",
        str(tls_server.certs.ca),
    )
    assert result.stderr == ""
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert "* registered and logged in as tls-alice" in lines
    assert "* joined secure" in lines
    assert any(re.fullmatch(r"\[\d\d:\d\d:\d\d\] tls-alice: hello over TLS", x) for x in lines)
    assert lines[-1] == "* bye: Goodbye"


def test_connect_with_a_tls_endpoint_string(tls_server: TLSServer, tmp_path: Path) -> None:
    """
    C{tls:HOST:PORT:trustRoots=DIR} works too.  DIR must hold only CA
    certificates among its C{*.pem} files (Twisted's rule), so the CA gets a
    directory of its own, away from the server's key.  An address as the
    host checks the certificate's IP entry.
    """
    roots = _trust_roots(tls_server.certs.ca, tmp_path / "roots")
    result = run_client(
        "register\ntls-bob\npassword1\n",
        "--connect",
        f"tls:127.0.0.1:{tls_server.ports.tls}:trustRoots={roots}",
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert "* registered and logged in as tls-bob" in result.stdout.splitlines()


def test_system_trust_refuses_a_private_ca(tls_server: TLSServer) -> None:
    result = run_client(
        "login\ntls-alice\npassword1\n",
        "--tls",
        "--host",
        "localhost",
        "--port",
        str(tls_server.ports.tls),
    )
    assert_refused(result, _NOT_VERIFIED)
    assert "--cafile" in result.stderr


def test_a_certificate_for_another_host_name_is_refused(tls_server: TLSServer) -> None:
    args = ["--port", str(tls_server.ports.tls_localhost), "--cafile"]
    args.append(str(tls_server.localhost_certs.ca))
    # The certificate and CA are fine for the name they carry...
    fine = run_client("register\ntls-carol\npassword1\n", "--host", "localhost", *args)
    assert (fine.returncode, fine.stderr) == (0, "")
    # ...but that name is not 127.0.0.1.
    result = run_client("login\ntls-carol\npassword1\n", "--host", "127.0.0.1", *args)
    assert_refused(result, f"{_NOT_VERIFIED}: it is not for 127.0.0.1")


def _trust_roots(ca: Path, directory: Path) -> str:
    """
    A C{trustRoots=} directory for a C{tls:} endpoint string: it must hold
    only CA certificates among its C{*.pem} files (Twisted's rule).
    """
    directory.mkdir()
    (directory / "ca.pem").write_bytes(ca.read_bytes())
    return quoteStringArgument(str(directory))


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_a_certificate_without_subject_alt_name_is_refused(
    tls_server: TLSServer, host: str
) -> None:
    """
    C{CN=other.example} and no subjectAltName names no host at all.  Twisted
    only logs the error service_identity raises for it, with a traceback,
    and lets the handshake finish, so the client must not rely on that.
    """
    result = run_client(
        "register\ntls-dave\npassword1\n",
        "--host",
        host,
        "--port",
        str(tls_server.ports.tls_no_san),
        "--cafile",
        str(tls_server.no_san_certs.ca),
    )
    assert_refused(result, f"{_NOT_VERIFIED}: it is not for {host} (certificate does not")


def test_a_common_name_is_not_a_host_name(tls_server: TLSServer, tmp_path: Path) -> None:
    """
    Not even other.example, the common name, is named by that certificate;
    a C{tls:} endpoint string (checked the same way as C{--tls}) reaches the
    server under that name through C{endpoint=}.
    """
    roots = _trust_roots(tls_server.no_san_certs.ca, tmp_path / "roots")
    port = tls_server.ports.tls_no_san
    connect = f"tls:other.example:{port}:endpoint=tcp\\:127.0.0.1\\:{port}:trustRoots={roots}"
    result = run_client("register\ntls-dave\npassword1\n", "--connect", connect)
    assert_refused(result, f"{_NOT_VERIFIED}: it is not for other.example (certificate does not")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_an_address_written_as_a_dns_name_is_refused(tls_server: TLSServer, host: str) -> None:
    """
    C{DNS:127.0.0.1} does not name the address 127.0.0.1 (only an IP entry
    does), and service_identity refuses to read a certificate with such an
    entry at all, so even its C{DNS:localhost} is not taken.
    """
    result = run_client(
        "register\ntls-erin\npassword1\n",
        "--host",
        host,
        "--port",
        str(tls_server.ports.tls_dns_address),
        "--cafile",
        str(tls_server.dns_address_certs.ca),
    )
    assert_refused(result, f"{_NOT_VERIFIED}: it is not for {host} (invalid DNS pattern")


def test_an_ssl_endpoint_string_is_verified_too(tls_server: TLSServer, tmp_path: Path) -> None:
    """
    Twisted's C{ssl:} client endpoint checks no certificate unless given
    C{caCertsDir}, and never the host name; the client checks both.
    """
    port = tls_server.ports.tls_localhost
    unchecked = run_client("register\ntls-fay\npassword1\n", "--connect", f"ssl:localhost:{port}")
    assert_refused(unchecked, f"{_NOT_VERIFIED}: not issued by a trusted CA")
    roots = _trust_roots(tls_server.localhost_certs.ca, tmp_path / "roots")
    wrong_host = run_client(
        "register\ntls-fay\npassword1\n", "--connect", f"ssl:127.0.0.1:{port}:caCertsDir={roots}"
    )
    assert_refused(wrong_host, f"{_NOT_VERIFIED}: it is not for 127.0.0.1")
    fine = run_client(
        "register\ntls-fay\npassword1\n", "--connect", f"ssl:localhost:{port}:caCertsDir={roots}"
    )
    assert (fine.returncode, fine.stderr) == (0, ""), fine
    assert "* registered and logged in as tls-fay" in fine.stdout.splitlines()


def test_tls_to_a_plain_port_fails_with_one_line(tls_server: TLSServer) -> None:
    result = run_client(
        "login\ntls-alice\npassword1\n",
        "--port",
        str(tls_server.ports.tcp),
        "--cafile",
        str(tls_server.certs.ca),
    )
    assert_refused(result, "TLS handshake failed")


def test_raw_tls_socket_gets_hello(tls_server: TLSServer) -> None:
    """
    The server side on its own: Python's C{ssl} module, trusting only the
    test CA and checking the host name, is greeted as any client is.
    """
    context = ssl.create_default_context(cafile=str(tls_server.certs.ca))
    with (
        socket.create_connection(("127.0.0.1", tls_server.ports.tls), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert tls.makefile("rb").readline().startswith(b"HELLO chatroom 1 :")


def test_cafile_implies_tls_and_is_read_at_once(tmp_path: Path) -> None:
    certs = write_certificates(tmp_path)
    options = Options()
    options.parseOptions(["--cafile", str(certs.ca)])
    assert options["tls"]
    assert options.trust_root is not None
    with pytest.raises(usage.UsageError, match="No such file"):
        Options().parseOptions(["--cafile", str(tmp_path / "missing.pem")])
    with pytest.raises(usage.UsageError, match="holds no PEM certificate"):
        Options().parseOptions(["--cafile", str(certs.key)])


@pytest.mark.parametrize(
    ("argv", "host"),
    [
        ([], None),
        (["--host", "chat.test"], None),
        (["--tls"], "127.0.0.1"),
        (["--tls", "--host", "chat.test"], "chat.test"),
        (["--connect", "tcp:chat.test:5000"], None),
        (["--connect", "tls:chat.test:5001"], "chat.test"),
        (["--connect", "TLS:port=5001:host=chat.test:timeout=3"], "chat.test"),
        (["--connect", "tls:fe80\\:\\:1:5001:endpoint=tcp\\:localhost\\:5001"], "fe80::1"),
        (["--connect", "ssl:chat.test:5001:caCertsDir=/etc/ssl/certs"], "chat.test"),
        (["--connect", "unix:/run/chat.sock"], None),
    ],
)
def test_the_host_a_certificate_must_name(argv: list[str], host: str | None) -> None:
    options = Options()
    options.parseOptions(argv)
    assert options.tls_host() == host


@pytest.mark.parametrize("flag", [["--tls"], ["--cafile", "ca.pem"]])
def test_tls_options_do_not_mix_with_connect(flag: list[str]) -> None:
    with pytest.raises(usage.UsageError, match="with --connect"):
        Options().parseOptions(["--connect", "tls:chat.test:5001", *flag])
