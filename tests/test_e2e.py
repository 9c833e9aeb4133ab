"""
End to end over real TCP: the service tree of C{twistd chatroom} on the
test reactor, with raw line clients.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest_twisted
from twisted.internet.defer import Deferred

from chat.lines import parse_line
from tests.e2e import RunningServer
from tests.test_protocol import WEB_SPAM
from tests.test_telnet import CTRL_C, WILL_TIMING_MARK


@pytest_twisted.ensureDeferred
async def test_register_login_and_wrong_password(server: RunningServer) -> None:
    alice = await server.connect()
    alice.send("/register alice password1")
    await alice.expect("OK register alice", "ROOM general 0", "END rooms")
    again = await server.connect()
    again.send("/login ALICE wrongpassword", "/login alice password1")
    await again.expect("ERR bad-credentials :wrong name or password", "OK login alice")
    again.send("/register Alice password1")
    await again.until("END rooms")
    await again.expect("ERR bad-state :you are already logged in")


@pytest_twisted.ensureDeferred
async def test_guided_dialog(server: RunningServer) -> None:
    client = await server.connect()
    client.send("register")
    await client.expect("PROMPT username :user name:")
    client.send("carol")
    await client.expect("PROMPT password :password:")
    client.send("a long password")
    await client.expect("OK register carol", "ROOM general 0", "END rooms")
    client.send("general")
    await client.expect("OK join general", "END history general")


@pytest_twisted.ensureDeferred
async def test_two_users_chat_live(server: RunningServer) -> None:
    alice = await server.member("alice")
    bob = await server.member("bob")
    joined = await alice.parsed()
    assert (joined.tag, joined.args[0], joined.args[2]) == ("JOIN", "general", "bob")
    alice.send("hello bob")
    mine, theirs = await alice.line(), await bob.line()
    assert mine == theirs
    msg = parse_line(mine)
    assert msg.tag == "MSG" and msg.args[2] == "alice" and msg.text == "hello bob"
    assert msg.args[1].endswith("Z") and len(msg.args[1]) == 24
    bob.send("/quit")
    await bob.expect("BYE :Goodbye")
    await bob.closed()
    parted = await alice.parsed()
    assert (parted.tag, parted.args[2]) == ("PART", "bob")


@pytest_twisted.ensureDeferred
async def test_many_clients_see_one_order(server: RunningServer) -> None:
    clients = [await server.member(f"user{i}") for i in range(12)]
    # Each saw a JOIN for everyone who came after it.
    for i, client in enumerate(clients):
        for _ in range(len(clients) - 1 - i):
            await client.until("JOIN ")
    for round_ in range(5):
        for i, client in enumerate(clients):
            client.send(f"m{round_}-{i}")
    seen = []
    for client in clients:
        texts = [(await client.parsed()).text for _ in range(5 * len(clients))]
        seen.append(texts)
    assert all(texts == seen[0] for texts in seen)
    assert sorted(seen[0]) == sorted(f"m{r}-{i}" for r in range(5) for i in range(12))


@pytest_twisted.ensureDeferred
async def test_rooms_create_join_leave(server: RunningServer) -> None:
    alice = await server.user("alice")
    alice.send("/create Lounge")
    await alice.expect("OK create Lounge", "OK join Lounge", "END history Lounge")
    bob = await server.user("bob")
    bob.send("/rooms")
    await bob.expect("ROOM general 0", "ROOM Lounge 1", "END rooms")
    bob.send("lounge")
    await bob.expect("OK join Lounge", "END history Lounge")
    bob.send("/who")
    await bob.expect("MEMBER Lounge alice", "MEMBER Lounge bob", "END members Lounge")
    bob.send("/leave")
    await bob.expect("OK leave Lounge")
    assert (await alice.parsed()).tag == "JOIN"
    assert (await alice.parsed()).tag == "PART"


@pytest_twisted.ensureDeferred
async def test_history_limit_and_order(tmp_path: Path) -> None:
    running = RunningServer(tmp_path / "data", "--history", "4")
    await running.start()
    try:
        alice = await running.member("alice")
        for i in range(7):
            alice.send(f"n{i}")
        sent = [await alice.parsed() for _ in range(7)]
        bob = await running.user("bob")
        bob.send("/join general")
        lines = await bob.until("END history general")
        history = [parse_line(line) for line in lines[1:-1]]
        assert lines[0] == "OK join general"
        assert [h.text for h in history] == ["n3", "n4", "n5", "n6"]
        assert [h.args[1] for h in history] == [m.args[1] for m in sent[3:]]
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_everything_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = RunningServer(data)
    await first.start()
    alice = await first.user("alice")
    alice.send("/create Attic", "up here")
    await alice.until("MSG Attic")
    await first.service.stopService()
    assert re.fullmatch(r"RECONNECT [1-5]", await alice.line())
    await alice.expect("BYE :server shutting down")
    await alice.closed()

    second = RunningServer(data)
    await second.start()
    try:
        again = await second.connect()
        again.send("/login alice password1")
        lines = await again.until("END rooms")
        assert lines == ["OK login alice", "ROOM Attic 0", "ROOM general 0", "END rooms"]
        again.send("attic")
        lines = await again.until("END history")
        assert parse_line(lines[1]).text == "up here"
    finally:
        await second.stop()


@pytest_twisted.ensureDeferred
async def test_hostile_bytes_harm_no_one(server: RunningServer) -> None:
    alice = await server.member("alice")
    bob = await server.member("bob")
    await alice.until("JOIN ")
    vandal = await server.member("vandal")
    await alice.until("JOIN ")
    await bob.until("JOIN ")
    junk = [
        b"x" * 100_000 + b"\n",
        b"\xfe\xfd\x00\x01garbage\n",  # no 0xFF: that starts a telnet command
        bytes(range(256)) * 20,
        b"\x00" * 5000,
        b"\n\r\n\r\r\n",
        "\u202eevil\n".encode(),
    ]
    for chunk in junk:
        vandal.send(chunk)
    vandal.send(b"\nstill talking\n")
    errors = await vandal.until("MSG general")
    assert any(e.startswith("ERR line-too-long") for e in errors)
    assert any(e.startswith("ERR bad-encoding") for e in errors)
    for i in range(5):
        alice.send(f"a{i}")
        bob.send(f"b{i}")
    for client in (alice, bob):
        texts = []
        while len([t for t in texts if t[:1] in ("a", "b") and t[1:].isdigit()]) < 10:
            line = await client.parsed()
            if line.tag == "MSG" and line.args[2] != "vandal":
                texts.append(line.text or "")
        assert sorted(texts) == sorted([f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)])


@pytest_twisted.ensureDeferred
async def test_slow_bcrypt_does_not_stop_the_chat(tmp_path: Path) -> None:
    """
    A registration at a high bcrypt cost is in flight while two users chat:
    every message arrives before the registration completes.
    """
    running = RunningServer(tmp_path / "data", "--bcrypt-rounds", "13")
    await running.start()
    try:
        alice = await running.member("alice")
        bob = await running.member("bob")
        await alice.until("JOIN ")
        slow = await running.connect()
        slow.send("/register slowpoke password1")
        registered = Deferred.fromCoroutine(slow.line())
        got: list[str] = []
        registered_first: list[str] = []
        registered.addCallback(lambda line: registered_first.append(line) or line)
        for i in range(20):
            alice.send(f"ping {i}")
            got.append((await bob.parsed()).text or "")
        assert got == [f"ping {i}" for i in range(20)]
        assert registered_first == [], "the chat waited for bcrypt"
        assert await registered == "OK register slowpoke"
    finally:
        await running.stop()


@pytest_twisted.ensureDeferred
async def test_behind_a_load_balancer_limits_see_the_clients_address(tmp_path: Path) -> None:
    # The deployment in the README: HAProxy sends the PROXY protocol, and
    # --port haproxy:... reads it, so that per-address limits count the
    # client, not the balancer (every connection comes from 127.0.0.1).
    server = RunningServer(
        tmp_path / "data",
        "--max-connections-per-ip",
        "1",
        port="haproxy:tcp:0:interface=127.0.0.1",
    )
    await server.start()
    try:
        first = await server.connect(proxy="PROXY TCP4 192.0.2.7 127.0.0.1 40001 5000")
        other = await server.connect(proxy="PROXY TCP4 198.51.100.9 127.0.0.1 40002 5000")
        for client in (first, other):
            client.send("/help")
            await client.until("END help")
        again = await server.connect(proxy="PROXY TCP4 192.0.2.7 127.0.0.1 40003 5000")
        # Counted from its first line: the header alone does not reach the
        # server's protocol.
        again.send("/help")
        await again.expect(
            "ERR rate-limited :too many connections from your address",
            "BYE :too many connections",
        )
        first.send("/register alice password1")
        await first.expect("OK register alice")
    finally:
        await server.stop()


@pytest_twisted.ensureDeferred
async def test_an_http_request_runs_nothing(server: RunningServer) -> None:
    bob = await server.member("bob")
    # What a web page can make a browser send: issue 10's printf, verbatim.
    web = await server.connect()
    web.send(WEB_SPAM)
    await web.closed()
    assert web.lines.pending == [] and web.buffer == b""
    bob.send("still alone")
    assert (await bob.line()).endswith(" bob :still alone")
    check = await server.connect()
    check.send("/login webspam password123")
    await check.expect("ERR bad-credentials :wrong name or password")


@pytest_twisted.ensureDeferred
async def test_telnet_ctrl_c(server: RunningServer) -> None:
    alice = await server.member("alice")
    bob = await server.member("bob")
    alice.send(b"never sent" + CTRL_C)
    alice.send("/help")
    await alice.until("END help")
    assert alice.telnet == [WILL_TIMING_MARK]
    alice.send("after")
    assert (await bob.until("MSG "))[-1].endswith(" alice :after")
    assert bob.telnet == []
