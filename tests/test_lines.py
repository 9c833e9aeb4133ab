"""
The line format both ends share.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from chat.lines import ServerLine, format_line, format_timestamp, parse_line, parse_timestamp

NO_SURROGATES = ["Cs"]
words = st.text(
    st.characters(blacklist_characters=" \r\n", blacklist_categories=NO_SURROGATES), min_size=1
)
texts = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=NO_SURROGATES))


class LineTests(SynchronousTestCase):
    def test_format(self) -> None:
        self.assertEqual(
            format_line("MSG", "general", "2026-11-25T04:50:05.123Z", "alice", text="hi :)"),
            b"MSG general 2026-11-25T04:50:05.123Z alice :hi :)\n",
        )
        self.assertEqual(format_line("END", "rooms"), b"END rooms\n")
        self.assertEqual(format_line("BYE", text=""), b"BYE :\n")

    def test_parse(self) -> None:
        self.assertEqual(
            parse_line(b"ERR bad-name :names are short\r\n"),
            ServerLine("ERR", ("bad-name",), "names are short"),
        )
        self.assertEqual(parse_line("END rooms"), ServerLine("END", ("rooms",), None))

    def test_not_a_server_line(self) -> None:
        for line in ("", "hello world", " OK x", "ok login"):
            with self.subTest(line=line):
                self.assertRaises(ValueError, parse_line, line)

    @given(st.sampled_from(["MSG", "OK", "ERR", "HISTORY"]), st.lists(words, max_size=4), texts)
    def test_round_trip(self, tag: str, args: list[str], text: str) -> None:
        # Args never start with ":" in chatroom (names, codes, stamps).
        args = [a for a in args if not a.startswith(":")]
        self.assertEqual(
            parse_line(format_line(tag, *args, text=text)), ServerLine(tag, tuple(args), text)
        )

    def test_timestamp(self) -> None:
        self.assertEqual(format_timestamp(0), "1970-01-01T00:00:00.000Z")
        self.assertEqual(format_timestamp(1764046205.1239), "2025-11-25T04:50:05.123Z")

    @given(st.integers(min_value=0, max_value=2**35))
    def test_timestamp_round_trip(self, millis: int) -> None:
        stamp = format_timestamp(millis / 1000)
        self.assertEqual(round(parse_timestamp(stamp) * 1000), millis)
        self.assertEqual(len(stamp), 24)

    def test_bad_timestamp(self) -> None:
        for stamp in ("2026-11-25T04:50:05Z", "2026-11-25 04:50:05.123Z", "x" * 24):
            with self.subTest(stamp=stamp):
                self.assertRaises(ValueError, parse_timestamp, stamp)
