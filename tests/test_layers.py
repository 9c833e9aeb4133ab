"""
The layering docs/architecture.md describes, checked on the imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from chat.outage import Outage
from chat.wire.quiet import SilentTally
from tests.helpers import Chat, temp_dir

CHAT = Path(__file__).resolve().parent.parent / "chat"

#: Modules of the domain: no wire format, no sockets.
DOMAIN = [
    "avatar.py",
    "rooms.py",
    "service.py",
    "outage.py",
    "logs.py",
    "errors.py",
    "message.py",
    "guard.py",
    "commands.py",
]
#: What formats or parses lines: the front doors' business.
WIRE = {"chat.lines", "chat.wire", "chat.protocol"}


def imported(path: Path) -> set[str]:
    """
    Every module C{path} imports, and every C{module.name} it imports from.
    """
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


class LayerTests(SynchronousTestCase):
    def test_the_domain_formats_no_lines(self) -> None:
        for name in DOMAIN:
            wire = {
                module
                for module in imported(CHAT / name)
                if any(module == w or module.startswith(w + ".") for w in WIRE)
            }
            self.assertEqual(wire, set(), name)

    def test_only_the_entry_points_import_the_global_reactor(self) -> None:
        users = sorted(
            str(path.relative_to(CHAT))
            for path in CHAT.rglob("*.py")
            if "twisted.internet.reactor" in imported(path)
        )
        self.assertEqual([u for u in users if u not in ("tap.py", "client.py")], [])


class LogNamespaceTests(SynchronousTestCase):
    """
    Moving the code did not move what operators filter the log on.
    """

    def test_connections_log_as_before(self) -> None:
        chat = Chat(temp_dir(self))
        self.addCleanup(chat.stop)
        with capturedLogs() as events:
            client = chat.connect()
            client.send("/help")
        namespaces = {e["log_namespace"] for e in events if "Connection from" in e["log_format"]}
        self.assertEqual(namespaces, {"chat.protocol.ChatProtocol"})
        (event,) = [e for e in events if e["log_format"] == "Connection from {peer}"]
        self.assertIs(event["log_source"], client.protocol)

    def test_outages_log_as_before(self) -> None:
        outage = Outage("Redis")
        with capturedLogs() as events:
            outage.refuse("messages", 1, "gone", action="store messages", who="senders")
            outage.over()
        self.assertEqual(
            [e["log_namespace"] for e in events], ["chat.service.Outage", "chat.service.Outage"]
        )

    def test_silent_connections_log_as_before(self) -> None:
        tally = SilentTally(Clock(), interval=10)
        with capturedLogs() as events:
            tally.closed("127.0.0.1:40000")
            tally.clock.advance(10)
            tally.closed("127.0.0.1:40001")
        self.assertEqual(
            [e["log_namespace"] for e in events],
            ["chat.quiet.SilentTally", "chat.quiet.SilentTally"],
        )


def module_name(path: Path) -> str:
    parts = path.relative_to(CHAT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


class CycleTests(SynchronousTestCase):
    def test_no_import_cycles_in_the_server(self) -> None:
        """
        No two modules of the server import each other, even only for
        types: each layer, and each module in it, reads from the ones below.
        (The client, chat/client/, is its own program, not checked here.)
        """
        modules = {
            name: path
            for path in CHAT.rglob("*.py")
            if not (name := module_name(path)).startswith("chat.client")
        }
        graph = {
            name: {m for m in imported(path) if m in modules and m != name}
            for name, path in modules.items()
        }
        cycles = []
        done: set[str] = set()

        def visit(name: str, path: list[str]) -> None:
            if name in path:
                cycles.append([*path[path.index(name) :], name])
                return
            if name in done:
                return
            for after in sorted(graph[name]):
                visit(after, [*path, name])
            done.add(name)

        for name in sorted(graph):
            visit(name, [])
        self.assertEqual(cycles, [])
