"""
Session tokens end to end: a real server restarted with SIGTERM (the
client is told when to come back, and resumes with no password) or killed
with C{kill -9}; and revocation across processes on one Redis.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from chat.lines import parse_line
from tests.conftest import ServerProcess, SocketClient
from tests.test_cluster import Cluster, cluster, user

__all__ = ["cluster"]


def token_of(client: SocketClient) -> str:
    client.send("/token")
    line = parse_line(client.line())
    assert line.tag == "OK" and line.args[0] == "token", line
    return line.args[1]


def resume(server: ServerProcess, name: str, token: str) -> list[str]:
    """
    C{/resume} on a new connection: its first line, and the rest up to the
    room list's end when it worked.
    """
    client = SocketClient(server)
    client.send(f"/resume {name} {token}")
    first = client.line()
    lines = [first] + (client.until("END rooms") if first.startswith("OK") else [])
    client.close()
    return lines


def test_a_restart_says_when_to_come_back_and_tokens_survive(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--flood-rate", "0")
    server.start()
    try:
        alice = user(server, "alice")
        token = token_of(alice)
        alice.send("/join general")
        alice.until("END history general")
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(alice.until("BYE")))
        reader.start()
        assert server.stop() == 0
        reader.join(10)
        assert re.fullmatch(r"RECONNECT [1-5]", seen[0]), seen
        assert seen[1:] == ["BYE :server shutting down"]
        server.restart()
        lines = resume(server, "alice", token)
        assert lines[0] == "OK login alice" and lines[-1] == "END rooms"
        # And after a crash.
        server.kill()
        server.restart()
        assert resume(server, "alice", token)[0] == "OK login alice"
        assert resume(server, "alice", token[:-1] + "x") == [
            "ERR bad-credentials :wrong name or token"
        ]
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()


def test_tokens_and_their_revocation_across_processes(cluster: Cluster) -> None:
    one = cluster.add("--admin", "root")
    two = cluster.add("--admin", "root")
    alice = user(one, "alice")
    token = token_of(alice)
    assert resume(two, "alice", token)[0] == "OK login alice"
    # /logout-all on one: refused on two at once.
    alice.send("/logout-all")
    assert alice.line() == "OK logout-all"
    assert resume(two, "alice", token) == ["ERR bad-credentials :wrong name or token"]
    # A password change on one: the old password and the tokens refused on two.
    token = token_of(alice)
    alice.send("/password", "password1", "correct horse battery")
    assert alice.until("OK password")[-1] == "OK password"
    assert resume(two, "alice", token) == ["ERR bad-credentials :wrong name or token"]
    old = SocketClient(two)
    old.send("/login alice password1")
    assert old.line().startswith("ERR bad-credentials")
    new = SocketClient(two)
    new.send("/login alice correct horse battery")
    assert new.line() == "OK login alice"
    # A lock on two: the token made on one refused everywhere.
    token = token_of(alice)
    root = user(two, "root")
    root.send("/lock alice")
    assert root.line() == "OK lock alice"
    root.send("/unlock alice")
    assert root.line() == "OK unlock alice"
    assert resume(one, "alice", token) == ["ERR bad-credentials :wrong name or token"]
