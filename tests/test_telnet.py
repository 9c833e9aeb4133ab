"""
Telnet commands taken out of the byte stream, alone; tests/test_protocol.py
has them on a connection.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chat.wire.telnet import split_commands

#: What telnet sends for Ctrl-C: IAC IP, then IAC DO TIMING-MARK.
CTRL_C = b"\xff\xf4\xff\xfd\x06"
WILL_TIMING_MARK = b"\xff\xfb\x06"
#: What telnet sent for a line typed as "\u4f60\u597d\uff0c\u4e16\u754c \u00ff
#: \u30c6\u30b9\u30c8 \ud55c\uad6d\uc5b4": the bytes 0x83 and 0x9C, which are
#: Ctrl-C and Ctrl-\\ with the high bit set, went as IAC IP and IAC BRK,
#: each with IAC DO TIMING-MARK.
TELNET_CJK = (
    b"\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c \xc3\xbf \xe3\xff\xf4\xff\xfd"
    b"\x06\x86\xe3\x82\xb9\xe3\xff\xf4\xff\xfd\x06\x88 \xed\x95\xff\xf3\xff\xfd\x06\xea\xb5\xad"
    b"\xec\x96\xb4\r\n"
)
CJK = "\u4f60\u597d\uff0c\u4e16\u754c \u00ff \u30c6\u30b9\u30c8 \ud55c\uad6d\uc5b4"


def feed(*reads: bytes) -> tuple[bytes, bytes, bool]:
    """
    Run reads through L{split_commands} as the protocol does, carrying what
    each leaves unfinished into the next.
    """
    text = replies = unfinished = b""
    abandoned = False
    for data in reads:
        out, answer, unfinished, abandon = split_commands(unfinished + data)
        if abandon:
            text = text[: text.rfind(b"\n") + 1]
            abandoned = True
        text += out
        replies += answer
    assert unfinished == b"", unfinished
    return text, replies, abandoned


class SplitCommandsTests(SynchronousTestCase):
    def test_no_command(self) -> None:
        self.assertEqual(split_commands(b"hello\n"), (b"hello\n", b"", b"", False))

    def test_ctrl_c_abandons_the_line_and_agrees_to_the_timing_mark(self) -> None:
        self.assertEqual(split_commands(b"half" + CTRL_C), (b"", WILL_TIMING_MARK, b"", True))
        self.assertEqual(
            split_commands(b"one\nhalf" + CTRL_C + b"two\n"),
            (b"one\ntwo\n", WILL_TIMING_MARK, b"", False),
        )

    def test_bytes_telnet_took_for_keys_are_put_back(self) -> None:
        self.assertEqual(
            split_commands(TELNET_CJK), (CJK.encode() + b"\r\n", WILL_TIMING_MARK * 3, b"", False)
        )
        # 0x8F and 0x9A (Ctrl-O and Ctrl-Z) go as IAC AO and IAC SUSP.
        captured = b"A\xc3\xff\xf5\xff\xfd\x06B\xc3\xff\xed\xff\xfd\x06C\r\n"
        self.assertEqual(split_commands(captured)[0].decode(), "A\u00cfB\u00daC\r\n")
        # The lead byte may have come in the read before.
        self.assertEqual(
            split_commands(b"\xff\xf4\x86", before=b"ab\xe3"), (b"\x83\x86", b"", b"", False)
        )
        # An interrupt after a whole character is one.
        self.assertEqual(split_commands(b"\xc3\xa9\xff\xf4"), (b"", b"", b"", True))
        self.assertEqual(split_commands(b"\xff\xf4", before=b"\xe3\x83\x86"), (b"", b"", b"", True))

    def test_other_ways_to_abandon_a_line(self) -> None:
        for command in (b"\xf3", b"\xee", b"\xf8"):  # BRK, ABORT, EL
            self.assertEqual(
                split_commands(b"a\nb\xff" + command + b"c"), (b"a\nc", b"", b"", False)
            )

    def test_options_are_refused_and_refusals_not_answered(self) -> None:
        self.assertEqual(split_commands(b"\xff\xfd\x1f"), (b"", b"\xff\xfc\x1f", b"", False))
        self.assertEqual(split_commands(b"\xff\xfb\x01"), (b"", b"\xff\xfe\x01", b"", False))
        self.assertEqual(split_commands(b"\xff\xfc\x01\xff\xfe\x06"), (b"", b"", b"", False))

    def test_two_byte_commands_and_a_literal_ff_are_dropped(self) -> None:
        # IAC IAC is a literal 0xFF, which UTF-8 never holds; NOP, AYT, GA.
        data = b"a\xff\xffb\xff\xf1c\xff\xf6d\xff\xf9e\n"
        self.assertEqual(split_commands(data), (b"abcde\n", b"", b"", False))

    def test_iac_before_a_byte_that_is_no_command(self) -> None:
        # Only the IAC goes: the LF after it still ends the line.
        self.assertEqual(split_commands(b"ok\xff\nnext\xffA"), (b"ok\nnextA", b"", b"", False))

    def test_subnegotiation(self) -> None:
        data = b"a\xff\xfa\x18\x00xt\xff\xffrm\xff\xf0b\n"
        self.assertEqual(split_commands(data), (b"ab\n", b"", b"", False))

    def test_subnegotiation_cut_short_by_an_lf(self) -> None:
        self.assertEqual(
            split_commands(b"a\xff\xfa\x18junk\n/help\n"), (b"a\n/help\n", b"", b"", False)
        )

    def test_cut_anywhere(self) -> None:
        data = b"x" + CTRL_C + b"/he\xff\xfa\x18\x00xt\xff\xffrm\xff\xf0lp\xff\xfd\x1f\n"
        whole = split_commands(data)
        self.assertEqual(whole, (b"/help\n", WILL_TIMING_MARK + b"\xff\xfc\x1f", b"", True))
        for cut in range(len(data) + 1):
            self.assertEqual(feed(data[:cut], data[cut:]), (*whole[:2], True), cut)
        self.assertEqual(feed(*(data[i : i + 1] for i in range(len(data)))), (*whole[:2], True))

    def test_what_is_kept_between_reads_is_small(self) -> None:
        for data in (b"\xff", b"\xff\xfd", b"\xff\xfa" + b"x" * 5000, b"\xff\xfax\xff"):
            self.assertLessEqual(len(split_commands(data)[2]), 3, data)
