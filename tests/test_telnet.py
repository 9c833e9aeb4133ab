"""
Telnet commands taken out of the byte stream, alone; tests/test_protocol.py
has them on a connection.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chat.telnet import split_commands

#: What telnet sends for Ctrl-C: IAC IP, then IAC DO TIMING-MARK.
CTRL_C = b"\xff\xf4\xff\xfd\x06"
WILL_TIMING_MARK = b"\xff\xfb\x06"


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
