"""
Private messages end to end: real servers over TCP, on the file store
across a C{kill -9}, and on Redis across processes.
"""

from __future__ import annotations

import threading
from pathlib import Path

from chat.lines import parse_line
from tests.conftest import ServerProcess, SocketClient
from tests.test_cluster import Cluster, cluster, member, messages, user

__all__ = ["cluster"]


def login(server: ServerProcess, name: str) -> tuple[SocketClient, list[str]]:
    """
    Log in; return the connection and what followed the room list.
    """
    client = SocketClient(server)
    client.send(f"/login {name} password1")
    assert client.line() == f"OK login {name}"
    client.until("END rooms")
    # A line the server answers at once, to know the login's lines are all in.
    client.send("/ignores")
    return client, client.until("END ignores")[:-1]


def test_a_message_to_someone_away_survives_kill_9(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--flood-rate", "0")
    server.start()
    try:
        user(server, "bob").close()
        alice = user(server, "alice")
        alice.send("/msg bob are you there?", "/msg BOB (after the crash)")
        sent = [alice.line(), alice.line()]
        stamps = [parse_line(line).args[1] for line in sent]
        assert sent == [
            f"DM bob {stamps[0]} alice :are you there?",
            f"DM bob {stamps[1]} alice :(after the crash)",
        ]
        server.kill()
        server.restart()
        bob, unread = login(server, "bob")
        assert unread == [
            f"DM alice {stamps[0]} alice :are you there?",
            f"DM alice {stamps[1]} alice :(after the crash)",
            "END unread",
        ]
        bob.send("/msg alice yes")
        answer = bob.line()
        alice, unread = login(server, "alice")
        assert unread == [answer.replace("DM alice", "DM bob", 1), "END unread"]
        alice.send("/history @bob", "/dms")
        history = alice.until("END dms")
        last = parse_line(answer).args[1]
        assert history == [
            f"HISTORY @bob {stamps[0]} alice :are you there?",
            f"HISTORY @bob {stamps[1]} alice :(after the crash)",
            f"HISTORY @bob {last} bob :yes",
            "END history @bob",
            f"CONVERSATION bob {last}",
            "END dms",
        ]
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()


def test_across_processes_on_one_redis(cluster: Cluster) -> None:
    one, two, three = cluster.add(), cluster.add(), cluster.add()
    alice = user(one, "alice")
    bob = user(two, "bob")
    # Online on another process: shown at once, with one stamp.
    alice.send("/msg bob hi from one")
    mine = parse_line(alice.line())
    theirs = parse_line(bob.line())
    assert (theirs.tag, theirs.args[0], theirs.args[2], theirs.text) == (
        "DM",
        "alice",
        "alice",
        "hi from one",
    )
    assert mine.args[1] == theirs.args[1]
    bob.send("/quit")
    bob.until("BYE")
    bob.close()
    # bob's process has told Redis he is gone once a line from it has
    # gone round: alice's next message is kept for him.
    carol = user(two, "carol")
    carol.send("/msg alice sync")
    assert parse_line(alice.line()).text == "sync"
    alice.send("/msg bob while you were away")
    kept = parse_line(alice.line())
    bob, unread = login(three, "bob")
    assert unread == [f"DM alice {kept.args[1]} alice :while you were away", "END unread"]
    bob.send("/history @ALICE")
    assert [parse_line(line).text for line in bob.until("END history @alice")[:-1]] == [
        "hi from one",
        "while you were away",
    ]


def test_room_stamps_are_unique_across_processes(cluster: Cluster) -> None:
    servers = [cluster.add("--history", "200") for _ in range(2)]
    clients = [member(server, name) for server, name in zip(servers, ["alice", "bob"], strict=True)]
    senders = [threading.Thread(target=c.send, args=[f"{i}" for i in range(60)]) for c in clients]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    for client in clients:
        messages(client, 120)
    watcher = user(servers[0], "carol")
    watcher.send("/history general 120")
    stamps = [parse_line(line).args[1] for line in watcher.until("END history")[:-1]]
    assert len(stamps) == 120
    assert len(set(stamps)) == 120
    assert sorted(stamps) == stamps
