"""
The command line and the wiring, on a memory reactor.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.testing import MemoryReactorClock
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from chat.protocol import ChatFactory
from chat.service import ChatService
from chat.storage.redis import RedisAccounts, RedisBackend
from chat.tap import DataLockService, Options, makeService
from tests.helpers import temp_dir, walk


def build(tmp_path: Path, *argv: str) -> tuple[MemoryReactorClock, ChatFactory]:
    options = Options()
    options.parseOptions(["--data", str(tmp_path / "data"), *argv])
    reactor = MemoryReactorClock()
    service = makeService(options, reactor)
    service.startService()
    factories = {factory for _, factory, _, _ in reactor.tcpServers}
    assert len(factories) == 1, reactor.tcpServers
    return reactor, factories.pop()


class TapTests(SynchronousTestCase):
    def test_default_port_is_local(self) -> None:
        reactor, _ = build(temp_dir(self))
        self.assertEqual(
            [(port, interface) for port, _, _, interface in reactor.tcpServers],
            [(5000, "127.0.0.1")],
        )

    def test_ports_repeat(self) -> None:
        reactor, _ = build(temp_dir(self), "--port", "tcp:7001", "-p", "tcp:7002:interface=0.0.0.0")
        self.assertEqual(
            [(port, interface) for port, _, _, interface in reactor.tcpServers],
            [(7001, ""), (7002, "0.0.0.0")],
        )

    def test_defaults(self) -> None:
        options = Options()
        options.parseOptions([])
        self.assertEqual(
            (options["data"], options["history"], options["bcrypt-rounds"]), ("./data", 50, 12)
        )

    def test_fresh_data_directory_starts_with_general(self) -> None:
        tmp_path = temp_dir(self)
        _, factory = build(tmp_path)
        self.assertEqual(factory.service.room_list(), [("general", 0)])
        self.assertTrue((tmp_path / "data" / "rooms" / "general.log").exists())

    def test_default_checker_takes_registrations(self) -> None:
        _, factory = build(temp_dir(self), "--bcrypt-rounds", "5")
        self.assertIsNotNone(factory.accounts)
        self.assertEqual(factory.accounts.rounds, 5)  # type: ignore[union-attr]

    def test_auth_option_without_a_store_closes_registration(self) -> None:
        tmp_path = temp_dir(self)
        users = tmp_path / "passwd"
        users.write_text("alice:password1\n")
        _, factory = build(tmp_path, "--auth", f"file:{users}")
        self.assertIsNone(factory.accounts)

    def test_bcrypt_auth_option_uses_the_given_file(self) -> None:
        tmp_path = temp_dir(self)
        _, factory = build(tmp_path, "--auth", f"bcrypt:{tmp_path / 'elsewhere.txt'}")
        self.assertIsNotNone(factory.accounts)
        self.assertEqual(
            factory.accounts.path,  # type: ignore[union-attr]
            tmp_path / "elsewhere.txt",
        )

    def test_bad_options(self) -> None:
        for argv in [
            ["--bcrypt-rounds", "3"],
            ["--history", "-1"],
            ["--flood-rate", "x"],
            ["--port"],
            ["--port", "tcp:nope"],
            ["--port", "bogus:1"],
            ["--store", "http://localhost"],
            ["--store", "redis://host/notanumber"],
        ]:
            try:
                with self.assertRaises(UsageError):
                    Options().parseOptions(argv)
            except self.failureException as e:
                self.fail(f"argv={argv!r}: {e}")

    def test_redis_store(self) -> None:
        options = Options()
        options.parseOptions(["--store", "redis://:secret@10.0.0.5:6380/2", "--history-cap", "500"])
        reactor = MemoryReactorClock()
        service = makeService(options, reactor)
        service.startService()
        # The port is bound and takes connections before Redis has answered
        # with the rooms, to tell them the server is starting.
        self.assertEqual(len(reactor.tcpServers), 1)
        chat = next(s for s in walk(service) if isinstance(s, ChatService))
        self.assertFalse(chat.started)
        backend = chat.backend
        assert isinstance(backend, RedisBackend)
        address = backend.connection.address
        self.assertEqual((address.host, address.port, address.db), ("10.0.0.5", 6380, 2))
        self.assertEqual(backend.history_cap, 500)
        factory = next(s for s in walk(service) if hasattr(s, "factory")).factory
        self.assertIsInstance(factory.accounts, RedisAccounts)
        self.assertEqual(factory.accounts.rounds, 12)

    def test_files_are_loaded_before_the_ports_listen(self) -> None:
        _, factory = build(temp_dir(self))
        self.assertTrue(factory.service.ready.called)
        self.assertTrue(factory.service.started)


def _help() -> str:
    return str(Options())


class HelpTests(SynchronousTestCase):
    """
    What C{twistd chatroom --help} and C{--version} say, and how a mistake
    is reported.
    """

    def test_auth_says_what_it_defaults_to(self) -> None:
        (auth,) = [doc for name, doc in Options().docs.items() if name == "auth"]
        self.assertIn("[default: bcrypt:DATA/users.txt", auth)
        self.assertIn("with --store, the accounts in Redis", auth)

    def test_flood_burst_is_a_count(self) -> None:
        self.assertRegex(" ".join(_help().split()), r"--flood-burst= [^[]*\[default: 20\]")
        options = Options()
        options.parseOptions(["--flood-burst", "7"])
        self.assertEqual(options["flood-burst"], 7)
        self.assertIsInstance(options["flood-burst"], int)
        with self.assertRaises(UsageError):
            Options().parseOptions(["--flood-burst", "2.5"])

    def test_no_stray_spaces_in_any_option_text(self) -> None:
        for line in _help().splitlines():
            text = line.strip()
            if text.startswith("-"):
                # Drop the option column, which is padded to the text's.
                text = text.split("  ", 1)[-1].strip()
            self.assertNotIn("  ", text, line)
        self.assertIn("unix:/tmp/chat.sock. Repeat for several.", " ".join(_help().split()))

    def test_store_syntax_is_the_readmes(self) -> None:
        readme = (Path(__file__).parent.parent / "README.md").read_text()
        (row,) = [line for line in readme.splitlines() if line.startswith("| `--store` |")]
        forms = row.split("|")[3].split("`")[1:4:2]
        self.assertEqual(
            forms, ["redis://[[user]:password@]host[:port][/db]", "unix:///path/redis.sock?db=N"]
        )
        words = " ".join(_help().split())
        for form in forms:
            self.assertIn(form, words)

    def test_version_is_chatrooms(self) -> None:
        import io
        from contextlib import redirect_stdout

        from chat import PROTOCOL_VERSION, __version__

        out = io.StringIO()
        with redirect_stdout(out), self.assertRaises(SystemExit) as caught:
            Options().parseOptions(["--version"])
        self.assertEqual(caught.exception.code, 0)
        self.assertTrue(
            out.getvalue().startswith(f"chatroom {__version__} (protocol {PROTOCOL_VERSION}, "),
            out.getvalue(),
        )

    def test_a_bad_value_names_the_option_and_what_is_wrong(self) -> None:
        for argv, message in [
            (["--max-sendq", "abc"], "--max-sendq abc: not a whole number"),
            (["--flood-rate", "fast"], "--flood-rate fast: not a number"),
            (["--history", "-1"], "--history -1: must not be negative"),
            (["-d"], "option -d requires argument"),
        ]:
            with self.assertRaises(UsageError) as caught:
                Options().parseOptions(argv)
            self.assertEqual(str(caught.exception), message)

    def test_under_twistd_a_mistake_is_one_line(self) -> None:
        # twistd sets parent before parsing, and prints its whole usage
        # before any UsageError; a SystemExit is printed alone.
        options = Options()
        options.parent = Options()
        with self.assertRaises(SystemExit) as caught:
            options.parseOptions(["--max-sendq", "abc"])
        self.assertEqual(
            caught.exception.code,
            "twistd chatroom: --max-sendq abc: not a whole number; see twistd chatroom --help",
        )


class DataLockTests(SynchronousTestCase):
    """
    makeService without a reactor is twistd's: it locks the data directory.
    """

    def test_second_server_on_one_directory_exits_with_one_line(self) -> None:
        import os

        data = temp_dir(self) / "data"
        options = Options()
        options.parseOptions(["--data", str(data)])
        first = makeService(options)
        (lock,) = [s.lock for s in walk(first) if isinstance(s, DataLockService)]
        self.addCleanup(lock.release)
        with self.assertRaises(SystemExit) as caught:
            makeService(options)
        self.assertEqual(
            caught.exception.code,
            f"chatroom: {data} is in use by another chatroom server (pid {os.getpid()}); "
            "stop it or use another --data",
        )

    def test_unusable_data_directory_is_one_line(self) -> None:
        data = temp_dir(self) / "data"
        data.write_text("a file, not a directory")
        options = Options()
        options.parseOptions(["--data", str(data)])
        with self.assertRaises(SystemExit) as caught:
            makeService(options)
        message = str(caught.exception.code)
        self.assertTrue(message.startswith(f"chatroom: cannot use {data}: "), message)
        self.assertTrue(message.endswith("; fix it or use another --data"), message)

    def test_redis_store_locks_nothing(self) -> None:
        data = temp_dir(self) / "data"
        options = Options()
        options.parseOptions(["--data", str(data), "--store", "redis://127.0.0.1:1/0"])
        service = makeService(options)
        self.assertEqual([s for s in walk(service) if isinstance(s, DataLockService)], [])
        self.assertFalse(data.exists())
