"""
Several chatroom processes on one real Redis (C{--store redis://...}):
what crosses processes, one order for everyone, Redis and servers dying.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat.lines import parse_line
from tests.conftest import ServerProcess, SocketClient
from tests.redis_server import RedisProcess, require_redis


class Cluster:
    """
    chatroom processes sharing one Redis, each with its own (unused) data
    directory.
    """

    def __init__(self, tmp_path: Path, redis: RedisProcess) -> None:
        self.tmp_path = tmp_path
        self.redis = redis
        self.servers: list[ServerProcess] = []

    def add(self, *options: str) -> ServerProcess:
        server = ServerProcess(
            self.tmp_path / f"data{len(self.servers)}",
            "--store",
            self.redis.url,
            "--flood-rate",
            "0",
            *options,
        )
        server.data.mkdir()
        server.start()
        self.servers.append(server)
        return server

    def stop(self) -> None:
        for server in self.servers:
            if server.process is not None and server.process.poll() is None:
                server.kill()


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisProcess) -> Iterator[Cluster]:
    running = Cluster(tmp_path, redis_server)
    try:
        yield running
    finally:
        running.stop()


def user(server: ServerProcess, name: str, verb: str = "register") -> SocketClient:
    client = SocketClient(server)
    client.send(f"/{verb} {name} password1")
    assert client.line() == f"OK {verb} {name}"
    client.until("END rooms")
    return client


def member(server: ServerProcess, name: str, room: str = "general") -> SocketClient:
    client = user(server, name)
    client.send(f"/join {room}")
    client.until(f"END history {room}")
    return client


def messages(client: SocketClient, count: int) -> list[str]:
    """
    The next C{count} messages a client is shown, as C{user text}; other
    lines (JOIN, PART) are skipped.
    """
    seen = []
    while len(seen) < count:
        line = parse_line(client.line())
        if line.tag == "MSG":
            seen.append(f"{line.args[2]} {line.text}")
    return seen


def test_one_order_for_every_member_and_the_history(cluster: Cluster) -> None:
    servers = [cluster.add("--history", "200") for _ in range(3)]
    names = ["alice", "bob", "carol"]
    clients = [member(server, name) for server, name in zip(servers, names, strict=True)]
    # Everyone talks at once, each from their own process: the three
    # streams interleave in Redis, and everyone must see one interleaving.
    senders = [
        threading.Thread(target=c.send, args=[f"{n} {i}" for i in range(40)])
        for c, n in zip(clients, names, strict=True)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    seen = [messages(client, 120) for client in clients]
    assert seen[0] == seen[1] == seen[2]
    assert sorted(seen[0]) == sorted(f"{n} {n} {i}" for n in names for i in range(40))
    # Each sender's own messages keep the order they were sent in.
    for name in names:
        assert [m for m in seen[0] if m.startswith(name)] == [
            f"{name} {name} {i}" for i in range(40)
        ]
    # A newcomer on any process gets the same order as history.
    dave = user(servers[1], "dave")
    dave.send("/join general")
    history = [parse_line(line) for line in dave.until("END history")[1:-1]]
    assert [f"{h.args[2]} {h.text}" for h in history] == seen[0]


def test_accounts_and_rooms_are_shared(cluster: Cluster) -> None:
    one, two, three = (cluster.add() for _ in range(3))
    alice = user(one, "alice")
    # Registered on one, logged in on another; taken everywhere.
    again = user(two, "alice", verb="login")
    taken = SocketClient(three)
    taken.send("/register ALICE password2")
    assert parse_line(taken.line()).args[0] == "name-taken"
    # A room created on one process...
    again.send("/join general")
    again.until("END history general")
    watcher = member(three, "bob")
    assert again.line().startswith("JOIN general ")
    alice.send("/create Lounge", "/join general", "made it")
    alice.until("OK create Lounge")
    # ...exists on the others once anything said after it arrives there
    # (one stream, one order), with the same spelling.
    messages(watcher, 1)
    assert messages(again, 1) == ["alice made it"]
    watcher.send("/rooms")
    assert "ROOM Lounge 0" in watcher.until("END rooms")
    again.send("/join lounge")
    assert again.line() == "OK join Lounge"
    taken.send("/create LOUNGE")
    assert parse_line(taken.line()).args[0] == "bad-state"
    fresh = user(three, "carol")
    fresh.send("/create LOUNGE")
    assert parse_line(fresh.line()).args[0] == "room-exists"


def test_presence_counts_users_on_every_process(cluster: Cluster) -> None:
    one, two = cluster.add(), cluster.add()
    bob = member(one, "bob")
    alice = member(two, "alice")
    assert parse_line(bob.line()).tag == "JOIN"
    # Once alice sees this, her process has heard of bob too.
    bob.send("sync")
    assert messages(alice, 1) == ["bob sync"]
    assert messages(bob, 1) == ["bob sync"]
    # alice on a second process is still one member: no second JOIN.
    alice_too = user(one, "alice", verb="login")
    alice_too.send("/join general")
    alice_too.until("END history general")
    # Said after the join, on the same process: once others see it, Redis
    # has counted alice twice.
    alice_too.send("here too")
    assert messages(bob, 1) == ["alice here too"]
    assert messages(alice, 1) == ["alice here too"]
    assert messages(alice_too, 1) == ["alice here too"]
    alice_too.send("/who")
    assert alice_too.until("END members") == [
        "MEMBER general bob",
        "MEMBER general alice",
        "END members general",
    ]
    alice.send("/rooms")
    assert "ROOM general 2" in alice.until("END rooms")
    # She leaves on one process but is still there on the other: no PART,
    # and no JOIN when she is back.
    alice.send("/leave", "/join general", "still here")
    # (The next line bob gets, so neither a PART nor a JOIN came first.)
    line = parse_line(bob.line())
    assert (line.tag, line.args[2], line.text) == ("MSG", "alice", "still here")
    alice_too.send("/quit")
    alice.send("/quit")
    line = parse_line(bob.line())
    assert (line.tag, line.args[2]) == ("PART", "alice")


def test_a_killed_process_loses_its_members_within_seconds(cluster: Cluster) -> None:
    one, two = cluster.add(), cluster.add()
    alice = member(one, "alice")
    bob = member(two, "bob")
    assert parse_line(alice.line()).args[2] == "bob"
    since = len(one.output)
    two.kill()
    # No sleep: the PART comes once bob's process is found dead (its
    # heartbeat lasts 5 s); the socket's timeout bounds the wait.
    alice.sock.settimeout(15)
    line = parse_line(alice.line())
    assert (line.tag, line.args[2]) == ("PART", "bob")
    # Not a goodbye from bob's connection (it never said one), but the
    # heartbeat running out.
    one.wait_for("stopped its heartbeat: its users left their rooms", since)
    bob.close()
    alice.send("/who")
    assert alice.until("END members") == ["MEMBER general alice", "END members general"]
    alice.send("/rooms")
    assert "ROOM general 1" in alice.until("END rooms")


def test_redis_killed_and_restarted_mid_chat(cluster: Cluster) -> None:
    one, two = cluster.add(), cluster.add()
    alice = member(one, "alice")
    bob = member(two, "bob")
    alice.line()  # JOIN bob
    alice.send("before")
    assert messages(bob, 1) == ["alice before"]
    assert messages(alice, 1) == ["alice before"]

    since = [len(one.output), len(two.output)]
    cluster.redis.kill()
    one.wait_for("lost the connection to Redis", since[0])
    alice.send("during")
    line = parse_line(alice.line())
    assert (line.tag, line.args[0]) == ("ERR", "unavailable")
    # Nobody was disconnected: both still answer.
    bob.send("/help")
    assert bob.until("END help")[-1] == "END help"

    cluster.redis.start()
    for server, start in zip((one, two), since, strict=True):
        server.wait_for("redis commands: reconnected", start)
        server.wait_for("redis events: reconnected", start)
    alice.send("after")
    assert messages(bob, 1) == ["alice after"]
    assert messages(alice, 1) == ["alice after"]
    # The outage was logged once, and its end once.
    one.wait_for("available again", since[0])
    said = [
        line.split("] ", 1)[1]
        for line in one.output[since[0] :]
        if "unavailable" in line or "available again" in line
    ]
    assert len(said) == 2
    # Why: the connection went, or the first retry found nobody listening.
    assert re.fullmatch(
        r"Redis unavailable: cannot store messages \((lost the connection to Redis|"
        r"connection refused)\); senders get ERR unavailable",
        said[0],
    )
    # "during"; and "before" too when Redis died between showing it and
    # answering its sender (see the README).
    assert said[1] in (
        "Redis available again; 1 message was refused meanwhile",
        "Redis available again; 2 messages were refused meanwhile",
    )
    # What was acknowledged before Redis died is still there.
    carol = user(two, "carol")
    carol.send("/join general")
    history = [parse_line(line) for line in carol.until("END history")[1:-1]]
    assert [h.text for h in history] == ["before", "after"]
    # And logins work again.
    user(one, "bob", verb="login")


def test_a_server_started_before_redis_answers_then_serves(tmp_path: Path) -> None:
    require_redis()
    redis = RedisProcess(tmp_path / "redis")
    server = ServerProcess(tmp_path / "data", "--store", redis.url)
    server.data.mkdir()
    try:
        server.start(ready=False)
        # Greeted at once, and told why nothing works yet.
        early = SocketClient(server)
        early.send("/register alice password1", "general")
        assert early.line() == "ERR unavailable :starting up; try again shortly"
        assert early.line() == "ERR unavailable :starting up; try again shortly"
        # One line per failed attempt, with the reason.
        server.wait_for(rf"Redis at 127.0.0.1:{redis.port}: connection refused; retrying in ")
        redis.start()
        server.wait_for(r"Loaded \d+ rooms")
        early.send("/register alice password1")
        assert early.line() == "OK register alice"
        assert early.until("END rooms")[-1] == "END rooms"
        noise = [
            line
            for line in server.output
            if "Scheduling retry" in line or "internet.protocol.Factory#" in line
        ]
        assert noise == []
    finally:
        if server.process is not None and server.process.poll() is None:
            server.kill()
        redis.stop()
