"""
Telnet commands in the line stream (RFC 854), taken out before framing.

Real C{telnet} sends more than lines: Ctrl-C becomes C{IAC IP IAC DO
TIMING-MARK}, after which the client throws away everything the server
sends until the timing mark is answered; a literal 0xFF is doubled.  Byte
0xFF never occurs in UTF-8, so it can only start a telnet command and the
split is unambiguous.  telnet also mangles some UTF-8: it takes a byte
whose low seven bits are one of its special characters (0x83 is Ctrl-C
with the high bit set) for that key, and sends the command instead of the
byte, so CJK text is cut by interrupts; a command found where a character
still lacks a byte is put back as the byte it replaced.

L{split_commands} is a pure function over bytes: the protocol keeps the
few bytes of a command cut in two by TCP and hands them back with the next
read, so a connection carries no parser object.

Every option is refused except TIMING-MARK, which is agreed to because
that is how telnet asks whether the server has caught up.  Refusals answer
only C{DO} and C{WILL}, never C{DONT} or C{WONT}, so two refusing ends
cannot loop; and nothing is ever sent unasked, so a client that sends no
telnet command (C{nc}, the bundled client) never sees a telnet byte.
"""

# test-case-name: tests.test_telnet, tests.test_protocol

from __future__ import annotations

__all__ = ["IAC", "split_commands"]

# Command bytes (RFC 854, with ABORT and EOF from RFC 1184).  Twisted's
# twisted.conch.telnet names most of them but not all, nor TIMING-MARK.
IAC = 0xFF
DONT = 0xFE
DO = 0xFD
WONT = 0xFC
WILL = 0xFB
SB = 0xFA
SE = 0xF0
EL = 0xF8
AO = 0xF5
IP = 0xF4
BRK = 0xF3
ABORT = 0xEE
SUSP = 0xED
#: The lowest command byte (RFC 1184's EOF); after IAC, a lower byte is no
#: command, and only the IAC is dropped.
FIRST_COMMAND = 0xEC
#: The option telnet asks about after an interrupt (RFC 860).
TIMING_MARK = 0x06

#: Commands that abandon the line being typed: interrupt (Ctrl-C), break
#: (Ctrl-\), abort, and erase line.
_ABANDON = frozenset({IP, BRK, ABORT, EL})
#: The bytes telnet sends these commands for, inside UTF-8: Ctrl-C, Ctrl-\,
#: Ctrl-O and Ctrl-Z, each with the high bit set (a continuation byte).
_MANGLED = {IP: 0x83, BRK: 0x9C, AO: 0x8F, SUSP: 0x9A}
_LF = 0x0A


def split_commands(data: bytes, before: bytes = b"") -> tuple[bytes, bytes, bytes, bool]:
    """
    Take the telnet commands out of C{data}.

    A subnegotiation (C{IAC SB ... IAC SE}) also ends at an LF, which then
    ends the line as usual: no option is ever agreed to, so no client has a
    reason to send one, and a stray C{IAC SB} must not make the connection
    deaf.

    @param data: What arrived, after whatever the previous call returned as
        unfinished.
    @param before: The last bytes of the line received before C{data}, if
        any: up to three are looked at, to tell a mangled byte from an
        interrupt.
    @return: C{(text, replies, unfinished, abandon)}: the bytes with every
        command removed, each interrupted line cut away; the answers to
        send back (empty unless C{data} asked something); the start of a
        command cut off at the end of C{data}, at most three bytes, to pass
        back in front of the next read; and whether an interrupt came
        before any LF in C{text}, so that the line begun before C{data} is
        abandoned too.
    """
    out = bytearray()
    replies = bytearray()
    abandon = False
    size = len(data)
    start = 0
    while True:
        at = data.find(b"\xff", start)
        if at < 0:
            out += data[start:]
            return bytes(out), bytes(replies), b"", abandon
        out += data[start:at]
        if at + 1 == size:
            return bytes(out), bytes(replies), data[at:], abandon
        command = data[at + 1]
        if command < FIRST_COMMAND:
            # No command: drop the IAC alone, keep what follows (an LF, say).
            start = at + 1
        elif WILL <= command <= DONT:
            if at + 2 == size:
                return bytes(out), bytes(replies), data[at:], abandon
            option = data[at + 2]
            if command == DO:
                answer = WILL if option == TIMING_MARK else WONT
                replies += bytes((IAC, answer, option))
            elif command == WILL:
                replies += bytes((IAC, DONT, option))
            start = at + 3
        elif command == SB:
            end = _end_of_subnegotiation(data, at + 2)
            if end < 0:
                # Inside it still; remember whether an IAC was the last byte.
                tail = b"\xff\xfa\xff" if end == -2 else b"\xff\xfa"
                return bytes(out), bytes(replies), tail, abandon
            start = end
        else:
            mangled = _MANGLED.get(command)
            if mangled is not None and _inside_a_character((before + out)[-3:]):
                out.append(mangled)
            elif command in _ABANDON:
                line_start = out.rfind(b"\n") + 1
                if not line_start:
                    abandon = True
                del out[line_start:]
            # IAC IAC (a literal 0xFF, never UTF-8), NOP, AYT, ...: dropped.
            start = at + 2


def _inside_a_character(tail: bytes) -> bool:
    """
    Whether C{tail} ends with the start of a UTF-8 character that still
    lacks a continuation byte.
    """
    following = 0
    for byte in reversed(tail):
        if 0x80 <= byte <= 0xBF:
            following += 1
            continue
        if 0xC2 <= byte <= 0xDF:
            return following < 1
        if 0xE0 <= byte <= 0xEF:
            return following < 2
        if 0xF0 <= byte <= 0xF4:
            return following < 3
        return False
    return False


def _end_of_subnegotiation(data: bytes, start: int) -> int:
    """
    Where the text after a subnegotiation starting at C{start} resumes: just
    after its C{IAC SE}, or at the LF that cut it short; -1 if C{data} ends
    inside it, -2 if it ends with an IAC inside it.
    """
    size = len(data)
    at = start
    while at < size:
        byte = data[at]
        if byte == _LF:
            return at
        if byte == IAC:
            if at + 1 == size:
                return -2
            following = data[at + 1]
            if following == SE:
                return at + 2
            if following == _LF:
                return at + 1
            at += 2
        else:
            at += 1
    return -1
