"""
The command line: options, usage errors, the entry point's exit status 2.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from twisted.python import usage

from chat.client import (
    Options,
    main,
)
from tests.client.helpers import (
    ROOT,
    TIMEOUT,
    client_env,
)


def test_options_default_to_loopback_port_5000() -> None:
    options = Options()
    options.parseOptions([])
    assert options.address() == "127.0.0.1:5000"
    assert options["user"] is None


def test_options_host_port_and_user() -> None:
    options = Options()
    options.parseOptions(["--host", "::1", "--port", "6000", "--user", "alice"])
    assert options.address() == "[::1]:6000"
    assert options["user"] == "alice"


def test_options_connect_takes_an_endpoint_string() -> None:
    options = Options()
    options.parseOptions(["--connect", "tcp:chat.test:7000"])
    assert options.address() == "tcp:chat.test:7000"


@pytest.mark.parametrize(
    "argv",
    [
        ["--connect", "tcp:a:1", "--port", "2"],
        ["--connect", "tcp:a:1", "--host", "b"],
        ["--port", "0"],
        ["--port", "70000"],
        ["--port", "five"],
        ["--user", "two words"],
        ["--user", ""],
    ],
)
def test_options_refuse_contradictions_and_nonsense(argv: list[str]) -> None:
    with pytest.raises(usage.UsageError):
        Options().parseOptions(argv)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "abc"], "--port: abc is not a port number (1-65535)"),
        (["-p", "0"], "--port: 0 is not a port number (1-65535)"),
        (["--port", "70000"], "--port: 70000 is not a port number (1-65535)"),
        (["--port", "+80"], "--port: +80 is not a port number (1-65535)"),
        (["--port"], "option --port requires argument"),
        (["--host", ""], "--host: '' is not a host name or address"),
        (["--user", "two words"], "--user: 'two words' is not a username (one word)"),
        (["--cafile", "/nonexistent/ca.pem"], "--cafile: /nonexistent/ca.pem: No such file"),
        (["--connect", "tcp:chat.test:abc"], "--connect: tcp:chat.test:abc is not a client"),
        (["--connect", "nope:chat.test"], "--connect: nope:chat.test is not a client"),
        (["--connect", "tcp:chat.test"], "--connect: tcp:chat.test is not a client"),
        (["--bogus"], "option --bogus not recognized"),
        (["chat.test"], "unexpected argument 'chat.test' (options start with --)"),
        (["--connect", "tcp:a:1", "--port", "2"], "use either --connect or --host/--port"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"chatroom-client: {message}")
    assert err.endswith("; see --help\n")
    assert err.count("\n") == 1


def test_bad_port_from_the_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chat.client", "--port", "abc"],
        cwd=ROOT,
        env=client_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "chatroom-client: --port: abc is not a port number (1-65535); see --help\n"
    )
