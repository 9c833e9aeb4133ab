"""
Limits on what one client can make the server keep: rooms (and the files
behind them), accounts, and the room list's cost.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

import chat.service as chat_service
import chat.wire.encoder as wire_encoder
from chat.guard import Limits, Quota, minutes
from chat.interfaces import StoreUnavailable
from chat.lines import format_line, parse_line
from chat.tap import Options
from tests import conftest
from tests.conftest import ServerProcess, SocketClient
from tests.helpers import Chat, HeldRunner, temp_dir
from tests.redis_server import RedisProcess
from tests.test_cluster import Cluster, member, messages, user
from tests.test_tap import build


def codes(lines: list[str]) -> list[str]:
    return [parse_line(line).args[0] for line in lines if line.startswith("ERR ")]


class QuotaTests(SynchronousTestCase):
    def test_sliding_window(self) -> None:
        clock = Clock()
        quota = Quota(clock, 3, period=3600)
        for _ in range(3):
            self.assertEqual(quota.wait("a"), 0)
            quota.spend("a")
            clock.advance(600)
        # Uses at 0, 600 and 1200: the fourth may come at 3600.
        self.assertEqual(quota.wait("a"), 3600 - 1800)
        self.assertEqual(quota.wait("b"), 0)
        clock.advance(1800)
        self.assertEqual(quota.wait("a"), 0)
        quota.spend("a")
        self.assertEqual(quota.wait("a"), 600)

    def test_refund(self) -> None:
        clock = Clock()
        quota = Quota(clock, 1)
        quota.spend("a")
        self.assertGreater(quota.wait("a"), 0)
        quota.refund("a")
        self.assertEqual(quota.wait("a"), 0)
        quota.refund("a")
        self.assertEqual(quota.wait("a"), 0)

    def test_zero_is_no_limit(self) -> None:
        quota = Quota(Clock(), 0)
        for _ in range(100):
            quota.spend("a")
        self.assertEqual(quota.wait("a"), 0)

    def test_memory_is_bounded(self) -> None:
        clock = Clock()
        quota = Quota(clock, 2, period=10, max_keys=100)
        for i in range(1000):
            quota.spend(f"k{i}")
            clock.advance(0.001)
        self.assertLessEqual(len(quota._uses), 100)
        # The most recent keys are kept.
        quota.spend("k999")
        self.assertGreater(quota.wait("k999"), 0)

    def test_minutes(self) -> None:
        self.assertEqual(minutes(0.5), "1 min")
        self.assertEqual(minutes(60), "1 min")
        self.assertEqual(minutes(61), "2 min")
        self.assertEqual(minutes(3600), "60 min")


class RoomLimitTests(SynchronousTestCase):
    def chat(self, **limits: Any) -> Chat:
        return Chat(temp_dir(self), limits=Limits(**limits))

    def test_rooms_in_all(self) -> None:
        chat = self.chat(max_rooms=3, max_rooms_per_hour=0)
        alice = chat.user("alice")
        alice.send("/create one", "/create two")
        self.assertEqual(codes(alice.take()), [])
        alice.send("/create three")
        self.assertEqual(
            alice.take(),
            [
                "ERR rate-limited :this server has 3 rooms, its limit;"
                " join one of them (/rooms lists them)"
            ],
        )
        self.assertIsNone(chat.service.find("three"))
        self.assertFalse((chat.data / "rooms" / "three.log").exists())
        # Joining is not creating.
        alice.send("/join one")
        self.assertEqual(alice.take()[0], "OK join one")

    def test_rooms_being_created_count(self) -> None:
        chat = self.chat(max_rooms=2, max_rooms_per_hour=0)
        held = HeldRunner()
        chat.store._run = held
        alice = chat.user("alice")
        bob = chat.user("bob")
        alice.send("/create one")
        bob.send("/create two")
        self.assertEqual(codes(bob.take()), ["rate-limited"])
        held.release()
        self.assertEqual(alice.take()[0], "OK create one")

    def test_rooms_per_account_an_hour(self) -> None:
        chat = self.chat(max_rooms_per_hour=2)
        alice = chat.user("alice")
        again = chat.user("alice", register=False)
        alice.send("/create a1")
        chat.clock.advance(600)
        again.send("/create a2")
        alice.take()
        again.take()
        for client in (alice, again):
            client.send("/create a3")
            self.assertEqual(
                client.take(),
                ["ERR rate-limited :you may create 2 rooms an hour; try again in 50 min"],
            )
        # Another account has its own allowance.
        bob = chat.user("bob")
        bob.send("create b1")
        self.assertEqual(bob.take()[0], "OK create b1")
        chat.clock.advance(2999)
        alice.send("/create a3")
        self.assertEqual(
            alice.take(),
            ["ERR rate-limited :you may create 2 rooms an hour; try again in 1 min"],
        )
        chat.clock.advance(1)
        alice.send("/create a3")
        self.assertEqual(alice.take()[0], "OK create a3")
        alice.send("/create a4")
        self.assertEqual(codes(alice.take()), ["rate-limited"])

    def test_a_room_not_created_is_not_counted(self) -> None:
        chat = self.chat(max_rooms_per_hour=1)
        alice = chat.user("alice")
        with mock.patch.object(
            chat.store, "create_room", return_value=fail(StoreUnavailable("disk full"))
        ):
            alice.send("/create lost")
            self.assertEqual(codes(alice.take()), ["unavailable"])
        alice.send("/create general")
        self.assertEqual(codes(alice.take()), ["room-exists"])
        alice.send("/create kept")
        self.assertEqual(alice.take()[0], "OK create kept")
        alice.send("/create more")
        self.assertEqual(codes(alice.take()), ["rate-limited"])

    def test_defaults_and_zero(self) -> None:
        chat = self.chat(flood_rate=0)
        alice = chat.user("alice")
        alice.send(*(f"/create r{i}" for i in range(11)))
        self.assertEqual(codes(alice.take()), ["rate-limited"])
        self.assertEqual(len(chat.service.rooms), 11)
        chat = self.chat(max_rooms=0, max_rooms_per_hour=0, flood_rate=0)
        alice = chat.user("alice")
        alice.send(*(f"/create r{i}" for i in range(30)))
        self.assertEqual(codes(alice.take()), [])
        self.assertEqual(len(chat.service.rooms), 31)


class OptionTests(SynchronousTestCase):
    def test_options_reach_the_factory(self) -> None:
        _, factory = build(temp_dir(self))
        limits = factory.limits
        self.assertEqual(
            (limits.max_rooms, limits.max_rooms_per_hour, limits.max_registrations_per_ip),
            (10_000, 10, 10),
        )
        _, factory = build(
            temp_dir(self),
            "--max-rooms",
            "5",
            "--max-rooms-per-hour",
            "0",
            "--max-registrations-per-ip",
            "3",
        )
        self.assertEqual(factory.service.room_quota.limit, 0)
        self.assertEqual(factory.registrations.limit, 3)
        self.assertEqual(factory.limits.max_rooms, 5)
        self.assertRaises(UsageError, Options().parseOptions, ["--max-rooms", "-1"])


class RegistrationLimitTests(SynchronousTestCase):
    def chat(self, **limits: Any) -> Chat:
        return Chat(temp_dir(self), limits=Limits(**limits))

    def register(self, chat: Chat, name: str, peer: str) -> list[str]:
        client = chat.connect(peer=peer)
        client.take()
        client.send(f"/register {name} password1")
        return client.take()

    def test_per_address_an_hour(self) -> None:
        chat = self.chat(max_registrations_per_ip=2)
        self.assertEqual(self.register(chat, "a1", "203.0.113.5")[0], "OK register a1")
        chat.clock.advance(1200)
        self.assertEqual(self.register(chat, "a2", "203.0.113.5")[0], "OK register a2")
        self.assertEqual(
            self.register(chat, "a3", "203.0.113.5"),
            ["ERR rate-limited :your address may register 2 accounts an hour; try again in 40 min"],
        )
        self.assertFalse(chat.checker.user_exists("a3"))
        self.assertEqual(self.register(chat, "b1", "203.0.113.6")[0], "OK register b1")
        # Logging in is not registering.
        client = chat.connect(peer="203.0.113.5")
        client.send("/login a1 password1")
        self.assertIn("OK login a1", client.take())
        chat.clock.advance(2400)
        self.assertEqual(self.register(chat, "a3", "203.0.113.5")[0], "OK register a3")

    def test_an_ipv6_64_is_one_address(self) -> None:
        chat = self.chat(max_registrations_per_ip=1)
        self.assertEqual(self.register(chat, "a1", "2001:db8::1")[0], "OK register a1")
        self.assertEqual(codes(self.register(chat, "a2", "2001:db8::ffff:2")), ["rate-limited"])
        self.assertEqual(self.register(chat, "a3", "2001:db8:0:1::1")[0], "OK register a3")

    def test_exempt_networks(self) -> None:
        chat = self.chat(max_registrations_per_ip=1, exempt=())
        self.assertEqual(self.register(chat, "a1", "127.0.0.1")[0], "OK register a1")
        self.assertEqual(codes(self.register(chat, "a2", "127.0.0.1")), ["rate-limited"])
        chat = self.chat(max_registrations_per_ip=1)
        for i in range(5):
            self.assertEqual(self.register(chat, f"l{i}", "127.0.0.1")[0], f"OK register l{i}")

    def test_only_attempts_that_cost_bcrypt_count(self) -> None:
        chat = self.chat(max_registrations_per_ip=2)
        chat.user("taken")
        client = chat.connect(peer="198.51.100.9")
        client.take()
        client.send("/register taken password1", "/register weak short", "/register bad! password1")
        self.assertEqual(codes(client.take()), ["name-taken", "weak-password", "bad-name"])
        # A bcrypt that ends in a failure to store still counted.
        with mock.patch.object(
            chat.checker, "add_user", return_value=fail(StoreUnavailable("disk full"))
        ):
            client.send("/register lost password1")
            self.assertEqual(codes(client.take()), ["unavailable"])
        client.send("/register kept password1")
        self.assertEqual(client.take()[0], "OK register kept")
        self.assertEqual(codes(self.register(chat, "more", "198.51.100.9")), ["rate-limited"])

    def test_guided_dialog(self) -> None:
        chat = self.chat(max_registrations_per_ip=1)
        client = chat.connect(peer="192.0.2.44")
        client.take()
        client.send("register", "alice", "password1")
        self.assertEqual(
            client.take(),
            [
                "PROMPT username :user name:",
                "PROMPT password :password:",
                "OK register alice",
                "ROOM general 0",
                "END rooms",
            ],
        )
        other = chat.connect(peer="192.0.2.44")
        other.take()
        other.send("register")
        self.assertEqual(
            other.take(),
            ["ERR rate-limited :your address may register 1 accounts an hour; try again in 60 min"],
        )
        # Still at the start: login works.
        other.send("login", "alice", "password1")
        self.assertIn("OK login alice", other.take())


def expected_listing(service: chat_service.ChatService) -> bytes:
    rows = [format_line("ROOM", name, str(count)) for name, count in service.room_list()]
    return b"".join(rows) + b"END rooms\n"


class RoomListTests(SynchronousTestCase):
    def test_the_list_follows_every_change(self) -> None:
        chat = Chat(temp_dir(self), limits=Limits(max_rooms_per_hour=0))
        service = chat.service
        listing = chat.factory.listing
        alice = chat.user("alice")
        alice.send("/create Zoo", "/create apple", "/create Mid")
        bob = chat.in_room("bob", "zoo")
        bob2 = chat.user("bob", register=False)
        bob2.send("/join apple")
        alice.send("/rooms")
        self.assertEqual(
            [line for line in alice.take() if line.startswith(("ROOM", "END rooms"))],
            ["ROOM apple 1", "ROOM general 0", "ROOM Mid 1", "ROOM Zoo 1", "END rooms"],
        )
        self.assertEqual(listing.render(), expected_listing(service))
        bob.send("/leave")
        bob2.send("/quit")
        service.room_loaded("general", [], ["carol", "dave"])
        service.room_created("Added")
        service.user_joined("Added", "erin", "2026-12-02T00:00:00.000Z")
        self.assertEqual(listing.render(), expected_listing(service))
        service.user_parted("Added", "erin", "2026-12-02T00:00:00.000Z")
        self.assertEqual(listing.render(), expected_listing(service))

    def test_made_once_until_it_changes(self) -> None:
        chat = Chat(temp_dir(self))
        service = chat.service
        rooms = chat.factory.listing
        for i in range(500):
            service.room_created(f"room{i:03d}")
        alice = chat.user("alice")
        made = []
        real = wire_encoder.format_line

        def counting(*args: Any, **kwargs: Any) -> bytes:
            if args[0] == "ROOM":
                made.append(args)
            return real(*args, **kwargs)

        with mock.patch.object(wire_encoder, "format_line", counting):
            listing = rooms.render()
            alice.send("/rooms", "/rooms")
            self.assertEqual(made, [])
            self.assertIs(rooms.render(), listing)
            # Someone joins: one line is made again, not 501.
            alice.send("/join room123")
            alice.take()
            alice.send("/rooms")
            self.assertEqual(made, [("ROOM", "room123", "1")])
        lines = alice.take()
        self.assertEqual(len(lines), 502)
        self.assertIn("ROOM room123 1", lines)


def open_files(pid: int, directory: Path) -> list[str]:
    """
    The files under C{directory} that process C{pid} has open.
    """
    found = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith(str(directory.resolve()) + "/"):
            found.append(target)
    return found


def test_more_rooms_than_file_descriptors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """
    With more room files than the process may open, the server starts,
    serves every room, stores what is said in each and restarts.
    """
    limit = 64
    data = tmp_path / "data"
    rooms = data / "rooms"
    rooms.mkdir(parents=True)
    for i in range(200):
        (rooms / f"room{i:03d}.log").write_text(f"2026-12-02T00:00:00.000Z old before {i}\n")
    monkeypatch.setattr(
        conftest,
        "TWISTD",
        [
            sys.executable,
            "-c",
            "import resource\n"
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit}))\n"
            "from twisted.scripts.twistd import run\n"
            "run()",
        ],
    )
    server = ServerProcess(data, "--flood-rate", "0")
    server.start()
    try:
        clients = [SocketClient(server) for _ in range(3)]
        clients[0].send("/register alice password1")
        clients[0].until("END rooms")
        for i, client in enumerate(clients[1:]):
            client.send("/login alice password1" if i else "/register bob password1")
            client.until("END rooms")
        for i in range(200):
            client = clients[i % 3]
            client.send(f"/join room{i:03d}", f"said in {i}")
            history = client.until("END history")
            assert history[1:-1] == [
                f"HISTORY room{i:03d} 2026-12-02T00:00:00.000Z old :before {i}"
            ]
            line = parse_line(client.until("MSG")[-1])
            assert (line.args[0], line.text) == (f"room{i:03d}", f"said in {i}")
        # A quarter of the limit at most, however many rooms were written.
        assert server.process is not None
        assert 0 < len(open_files(server.process.pid, rooms)) <= limit // 4
        for client in clients:
            client.close()
        for i in range(200):
            stored = (rooms / f"room{i:03d}.log").read_text().splitlines()
            assert stored[0] == f"2026-12-02T00:00:00.000Z old before {i}"
            assert stored[1].endswith(f" said in {i}")
        assert server.stop() == 0
        server.restart()
        again = SocketClient(server)
        again.send("/login bob password1", "/join room199")
        assert again.until("END history")[-2].endswith(":said in 199")
        again.close()
        assert server.stop() == 0
        assert not [line for line in server.output if "Too many open files" in line]
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()


def test_limits_with_redis(tmp_path: Path, redis_server: RedisProcess) -> None:
    """
    With --store redis, --max-rooms counts every process's rooms; the
    hourly quotas count what each process sees.
    """
    cluster = Cluster(tmp_path, redis_server)
    options = ("--max-rooms", "4", "--max-rooms-per-hour", "2")
    options += ("--max-registrations-per-ip", "2", "--exempt-networks", "")
    try:
        one, two = cluster.add(*options), cluster.add(*options)
        alice = user(one, "alice")
        watcher = member(two, "bob")
        alice.send("/create A", "/create B", "/create C")
        assert [alice.until("OK join")[-1] for _ in "AB"] == ["OK join A", "OK join B"]
        assert alice.until("ERR")[-1] == (
            "ERR rate-limited :you may create 2 rooms an hour; try again in 60 min"
        )
        alice.send("/join general", "made two")
        # Said after both rooms were made: process two knows of them now.
        assert messages(watcher, 1) == ["alice made two"]
        watcher.send("/create C", "/create D")
        assert watcher.until("OK join C")[-1] == "OK join C"
        assert watcher.until("ERR")[-1] == (
            "ERR rate-limited :this server has 4 rooms, its limit;"
            " join one of them (/rooms lists them)"
        )
        # Two registrations from this address on each process: alice was
        # the first on one, carol is the second, erin one too many; bob
        # was the first on two, where dave may still register.
        user(one, "carol")
        refused = SocketClient(one)
        refused.send("/register erin password1")
        assert refused.line().startswith("ERR rate-limited :your address may register 2 accounts")
        user(two, "dave")
    finally:
        cluster.stop()
