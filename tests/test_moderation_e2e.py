"""
Moderation end to end: real servers over TCP, on the file store across a
C{kill -9}, and on Redis across processes (a kick or a lock issued on one
process acts on the connections of another).
"""

from __future__ import annotations

import json
from pathlib import Path

from chat.lines import parse_line
from tests.conftest import ServerProcess, SocketClient
from tests.test_cluster import Cluster, cluster, member, user

__all__ = ["cluster"]


def login(server: ServerProcess, name: str) -> SocketClient:
    client = SocketClient(server)
    client.send(f"/login {name} password1")
    assert client.line() == f"OK login {name}"
    client.until("END rooms")
    return client


def said(client: SocketClient, text: str) -> str:
    """
    Say C{text} in the client's room; the stamp it was given.
    """
    client.send(text)
    while True:
        line = parse_line(client.line())
        if line.tag == "MSG" and line.text == text:
            return line.args[1]


def test_moderation_survives_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, "--flood-rate", "0", "--admin", "root")
    server.start()
    try:
        alice = user(server, "alice")
        alice.send("/create Lounge")
        alice.until("END history Lounge")
        bob = member(server, "bob", "Lounge")
        mallory = member(server, "mallory", "Lounge")
        root = user(server, "root")
        user(server, "carol").close()
        alice.send("/op bob", "/topic house rules apply")
        alice.until("TOPIC")
        spam = said(mallory, "cheap pills here")
        said(mallory, "and more")
        while not bob.line().endswith(" mallory :and more"):
            pass
        bob.send(f"/delete {spam}", "/mute mallory", "/ban carol no reason")
        assert bob.line() == f"DELETE Lounge {spam} bob"
        assert bob.line().startswith("MUTE Lounge ")
        ban = bob.line()
        assert ban.startswith("BAN Lounge ") and ban.endswith(" bob carol :no reason")
        root.send("/lock mallory spam")
        assert root.line() == "OK lock mallory"
        server.kill()
        assert b"cheap pills" not in (data / "rooms" / "Lounge.log").read_bytes()
        server.restart()
        carol = login(server, "carol")
        carol.send("/join Lounge")
        assert carol.line() == "ERR banned :you are banned from Lounge"
        bob = login(server, "bob")
        bob.send("/join Lounge")
        joined = bob.until("END history Lounge")
        texts = [parse_line(line).text for line in joined]
        assert "cheap pills here" not in texts and "and more" in texts
        assert parse_line(bob.line()).tag == "TOPIC"
        bob.send("/ops", "/bans")
        assert bob.until("END ops Lounge") == [
            "OPERATOR Lounge alice owner",
            "OPERATOR Lounge bob operator",
            "END ops Lounge",
        ]
        assert bob.until("END bans Lounge") == [
            ban.replace("BAN Lounge", "BANNED Lounge", 1).replace(
                f" {parse_line(ban).args[1]} bob carol", f" carol {parse_line(ban).args[1]} bob"
            ),
            "END bans Lounge",
        ]
        locked = SocketClient(server)
        locked.send("/login mallory password1")
        assert locked.line() == "ERR locked :this account is locked: spam"
        entries = [json.loads(line) for line in (data / "audit.log").read_text().splitlines()]
        assert [e["action"] for e in entries] == ["op", "topic", "delete", "mute", "ban", "lock"]
        assert entries[2]["target"] == "mallory" and entries[2]["reason"] == spam
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()


def test_acts_reach_every_process(cluster: Cluster) -> None:
    one = cluster.add("--admin", "root")
    two = cluster.add("--admin", "root")
    alice = user(one, "alice")
    alice.send("/create Lounge")
    alice.until("END history Lounge")
    mallory = member(two, "mallory", "Lounge")
    alice.until("JOIN Lounge")
    bob = member(two, "bob", "Lounge")
    alice.until("JOIN Lounge")
    mallory.until("JOIN Lounge")
    # A kick on one removes the connection on the other from the room.
    alice.send("/kick mallory go away")
    kick = alice.line()
    assert kick.endswith(" alice mallory :go away")
    assert mallory.line() == kick
    assert bob.line() == kick
    mallory.send("/who")
    assert mallory.line().startswith("ERR bad-state")
    # A ban on one is kept on the other.
    alice.send("/ban mallory")
    alice.line()
    bob.line()
    mallory.send("/join Lounge")
    assert mallory.line() == "ERR banned :you are banned from Lounge"
    # A deletion on one is gone from the other's history, and from Redis.
    stamp = said(bob, "regrettable")
    alice.until("MSG")
    bob.send(f"/delete {stamp}")
    assert bob.line() == f"DELETE Lounge {stamp} bob"
    assert alice.line() == f"DELETE Lounge {stamp} bob"
    carol = member(one, "carol", "Lounge")
    bob.until("JOIN")
    alice.until("JOIN")
    carol.send("/history Lounge")
    assert "regrettable" not in "".join(carol.until("END history Lounge"))
    # A notice from one reaches everyone on both.
    root = user(one, "root")
    root.send("/wall hello everyone")
    notice = root.line()
    assert notice.endswith(" root :hello everyone")
    for client in (alice, bob, carol, mallory):
        assert client.line() == notice
    # A lock on one closes the account's connections on the other.
    root.send("/lock mallory")
    assert root.line() == "OK lock mallory"
    assert mallory.line() == "BYE :your account is locked"
    locked = SocketClient(two)
    locked.send("/login mallory password1")
    assert locked.line() == "ERR locked :this account is locked"
    # A drop on one sends the other's members to the lobby, without PART.
    root.send("/drop Lounge")
    dropped = root.line()
    assert dropped.startswith("DROPPED Lounge ") and dropped.endswith(" root")
    assert bob.line() == dropped
    assert alice.line() == dropped
    bob.send("/rooms")
    assert bob.until("END rooms") == ["ROOM general 0", "END rooms"]
    bob.send("/create Lounge")
    assert bob.until("END history Lounge") == [
        "OK create Lounge",
        "OK join Lounge",
        "END history Lounge",
    ]
    bob.send("/history Lounge", "/ops")
    assert bob.until("END ops Lounge") == [
        "END history Lounge",
        "OPERATOR Lounge bob owner",
        "END ops Lounge",
    ]
