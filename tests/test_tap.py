"""
The command line and the wiring, on a memory reactor.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.python.usage import UsageError

from chat.protocol import ChatFactory
from chat.tap import Options, makeService


def build(tmp_path: Path, *argv: str) -> tuple[MemoryReactorClock, ChatFactory]:
    options = Options()
    options.parseOptions(["--data", str(tmp_path / "data"), *argv])
    reactor = MemoryReactorClock()
    service = makeService(options, reactor)
    service.startService()
    factories = {factory for _, factory, _, _ in reactor.tcpServers}
    assert len(factories) == 1
    return reactor, factories.pop()


def test_default_port_is_local(tmp_path: Path) -> None:
    reactor, _ = build(tmp_path)
    assert [(port, interface) for port, _, _, interface in reactor.tcpServers] == [
        (5000, "127.0.0.1")
    ]


def test_ports_repeat(tmp_path: Path) -> None:
    reactor, _ = build(tmp_path, "--port", "tcp:7001", "-p", "tcp:7002:interface=0.0.0.0")
    assert [(port, interface) for port, _, _, interface in reactor.tcpServers] == [
        (7001, ""),
        (7002, "0.0.0.0"),
    ]


def test_defaults(tmp_path: Path) -> None:
    options = Options()
    options.parseOptions([])
    assert (options["data"], options["history"], options["bcrypt-rounds"]) == ("./data", 50, 12)


def test_fresh_data_directory_starts_with_general(tmp_path: Path) -> None:
    _, factory = build(tmp_path)
    assert factory.service.room_list() == [("general", 0)]
    assert (tmp_path / "data" / "rooms" / "general.log").exists()


def test_default_checker_takes_registrations(tmp_path: Path) -> None:
    _, factory = build(tmp_path, "--bcrypt-rounds", "5")
    assert factory.accounts is not None
    assert factory.accounts.rounds == 5  # type: ignore[attr-defined]


def test_auth_option_without_a_store_closes_registration(tmp_path: Path) -> None:
    users = tmp_path / "passwd"
    users.write_text("alice:password1\n")
    _, factory = build(tmp_path, "--auth", f"file:{users}")
    assert factory.accounts is None


def test_bcrypt_auth_option_uses_the_given_file(tmp_path: Path) -> None:
    _, factory = build(tmp_path, "--auth", f"bcrypt:{tmp_path / 'elsewhere.txt'}")
    assert factory.accounts is not None
    assert factory.accounts.path == tmp_path / "elsewhere.txt"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "argv",
    [
        ["--bcrypt-rounds", "3"],
        ["--history", "-1"],
        ["--flood-rate", "x"],
        ["--port"],
        ["--port", "tcp:nope"],
        ["--port", "bogus:1"],
    ],
)
def test_bad_options(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        Options().parseOptions(argv)
