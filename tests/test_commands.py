"""
Parsing client lines, without a connection.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from chat.commands import (
    COMMANDS,
    TABLE,
    Command,
    CommandError,
    State,
    Verb,
    help_lines,
    parse_args,
    parse_bare,
    split_command,
    valid_name,
    why_not,
)
from chat.lines import ErrorCode


class NameTests(SynchronousTestCase):
    def test_valid(self) -> None:
        for name in ("a", "A-b_9", "x" * 32, "-", "_"):
            self.assertTrue(valid_name(name), name)

    def test_invalid(self) -> None:
        for name in ("", "x" * 33, "a b", "a.b", "é", "a\n", "a/b", "\uff41"):
            self.assertFalse(valid_name(name), name)


class SlashTests(SynchronousTestCase):
    def test_verbs_are_case_insensitive(self) -> None:
        self.assertEqual(split_command("/JoIn general"), (Verb.JOIN, "general"))

    def test_double_slash_is_a_message(self) -> None:
        self.assertEqual(split_command("//me waves"), (Verb.SAY, "/me waves"))

    def test_unknown(self) -> None:
        with self.assertRaises(CommandError) as caught:
            split_command("/" + "x" * 100)
        self.assertIs(caught.exception.code, ErrorCode.UNKNOWN_COMMAND)
        self.assertLess(len(caught.exception.detail), 70)

    def test_message_verbs_cannot_be_typed(self) -> None:
        for line in ("/say hi", "/dialog login"):
            with self.assertRaises(CommandError):
                split_command(line)

    def test_password_keeps_its_spaces(self) -> None:
        self.assertEqual(parse_args(Verb.LOGIN, "bob  a b "), ("bob", " a b "))

    def test_arity(self) -> None:
        for verb, rest in [
            (Verb.LOGIN, "bob"),
            (Verb.LOGIN, "bob "),
            (Verb.REGISTER, ""),
            (Verb.JOIN, ""),
            (Verb.JOIN, "a b"),
            (Verb.ROOMS, "x"),
            (Verb.QUIT, "now"),
        ]:
            with self.subTest(verb=verb, rest=rest):
                with self.assertRaises(CommandError) as caught:
                    parse_args(verb, rest)
                self.assertIs(caught.exception.code, ErrorCode.BAD_SYNTAX)

    def test_extra_spaces_around_a_room_are_fine(self) -> None:
        self.assertEqual(parse_args(Verb.JOIN, "  general  "), ("general",))

    def test_bad_name(self) -> None:
        with self.assertRaises(CommandError) as caught:
            parse_args(Verb.CREATE, "no!")
        self.assertIs(caught.exception.code, ErrorCode.BAD_NAME)


class BareTests(SynchronousTestCase):
    def test_auth(self) -> None:
        self.assertEqual(parse_bare("LOGIN", True, False), Command(Verb.DIALOG, ("login",)))
        self.assertEqual(parse_bare(" register ", True, False), Command(Verb.DIALOG, ("register",)))
        self.assertEqual(parse_bare("exit", True, False), Command(Verb.QUIT))
        for line in ("login now", "hello", "general"):
            with self.assertRaises(CommandError) as caught:
                parse_bare(line, True, False)
            self.assertIs(caught.exception.code, ErrorCode.BAD_STATE)

    def test_lobby(self) -> None:
        self.assertEqual(parse_bare("general", False, True), Command(Verb.JOIN, ("general",)))
        self.assertEqual(parse_bare("create  Zoo", False, True), Command(Verb.CREATE, ("Zoo",)))
        self.assertEqual(parse_bare("Exit", False, True), Command(Verb.QUIT))
        self.assertEqual(parse_bare("login", False, True), Command(Verb.JOIN, ("login",)))

    def test_lobby_errors(self) -> None:
        for line, code in [
            ("two words", ErrorCode.BAD_STATE),
            ("create", ErrorCode.BAD_SYNTAX),
            ("create a b", ErrorCode.BAD_SYNTAX),
            ("bad!", ErrorCode.BAD_NAME),
        ]:
            with self.subTest(line=line):
                with self.assertRaises(CommandError) as caught:
                    parse_bare(line, False, True)
                self.assertIs(caught.exception.code, code)


class TableTests(SynchronousTestCase):
    """
    The command table says what the server said before it existed, word
    for word: /help, the usage lines and the why-not texts.
    """

    def test_help_text(self) -> None:
        self.assertEqual(
            help_lines(),
            [
                "Commands (the verb is case-insensitive):",
                "/register <name> <password>  create an account and log in",
                "/login <name> <password>     log in; or type login or register to be asked",
                "/resume <name> <token>       log in again with a session token from /token",
                "/rooms                       list the rooms and how many are in each",
                "/create <room>               create a room and join it"
                " (in the lobby: create <room>)",
                "/join <room>                 join a room (in the lobby: just the room's name)",
                "/leave                       leave the room, back to the lobby",
                "/who                         list the members of your room",
                "/msg <user> <text>           send a private message,"
                " delivered later if they are away",
                "/dms                         list your private conversations, latest first",
                "/history <room|@user> [<before-ts>] [<count>]"
                " older messages of a room or a conversation",
                "/ignore <user>               stop receiving someone's private messages",
                "/unignore <user>             receive their private messages again",
                "/ignores                     list whom you ignore",
                "/topic [<text>]              set the room's topic (operators); empty clears it",
                "/op <user>                   make someone an operator of the room (owner, admins)",
                "/deop <user>                 take away someone's operator rights (owner, admins)",
                "/ops                         list the room's owner and operators",
                "/kick <user> [<reason>]      send someone out of the room (operators)",
                "/ban <user> [<reason>]       keep someone out of the room (operators)",
                "/unban <user>                let a banned user back in (operators)",
                "/bans                        list the room's bans (operators)",
                "/mute <user>                 stop someone's messages to the room (operators)",
                "/unmute <user>               let a muted user speak again (operators)",
                "/delete <ts>                 delete a message by its timestamp"
                " (its sender, operators)",
                "/lock <user> [<reason>]      lock an account and disconnect it (admins)",
                "/unlock <user>               unlock an account (admins)",
                "/wall <text>                 a notice to everyone logged in (admins)",
                "/drop <room> [<reason>]      delete a room, its history and its bans (admins)",
                "/audit [<count>]             the last moderation and admin actions"
                " (admins; 50 by default)",
                "/token                       a session token, for /resume after a reconnect",
                "/password                    change your password (you are asked for both)",
                "/logout-all                  revoke every session token of your account",
                "/help                        this list",
                "/quit                        disconnect (or type exit)",
                "In a room, any other line is a message; start it with // to send a leading /.",
                "Names: 1 to 32 of A-Z a-z 0-9 _ -. Passwords: 8 to 128 characters.",
            ],
        )

    def test_public_api(self) -> None:
        self.assertEqual(
            [(spec.name, spec.usage) for spec in COMMANDS],
            [
                ("register", "/register <name> <password>"),
                ("login", "/login <name> <password>"),
                ("resume", "/resume <name> <token>"),
                ("rooms", "/rooms"),
                ("create", "/create <room>"),
                ("join", "/join <room>"),
                ("leave", "/leave"),
                ("who", "/who"),
                ("msg", "/msg <user> <text>"),
                ("dms", "/dms"),
                ("history", "/history <room|@user> [<before-ts>] [<count>]"),
                ("ignore", "/ignore <user>"),
                ("unignore", "/unignore <user>"),
                ("ignores", "/ignores"),
                ("topic", "/topic [<text>]"),
                ("op", "/op <user>"),
                ("deop", "/deop <user>"),
                ("ops", "/ops"),
                ("kick", "/kick <user> [<reason>]"),
                ("ban", "/ban <user> [<reason>]"),
                ("unban", "/unban <user>"),
                ("bans", "/bans"),
                ("mute", "/mute <user>"),
                ("unmute", "/unmute <user>"),
                ("delete", "/delete <ts>"),
                ("lock", "/lock <user> [<reason>]"),
                ("unlock", "/unlock <user>"),
                ("wall", "/wall <text>"),
                ("drop", "/drop <room> [<reason>]"),
                ("audit", "/audit [<count>]"),
                ("token", "/token"),
                ("password", "/password"),
                ("logout-all", "/logout-all"),
                ("help", "/help"),
                ("quit", "/quit"),
            ],
        )
        self.assertEqual(
            [spec.name for spec in COMMANDS if spec.ok],
            ["register", "login", "create", "join", "leave", "ignore", "unignore"],
        )

    def test_usage_errors(self) -> None:
        for verb, rest, usage in [
            (Verb.LOGIN, "alice", "usage: /login <name> <password>"),
            (Verb.REGISTER, "", "usage: /register <name> <password>"),
            (Verb.JOIN, "", "usage: /join <room>"),
            (Verb.WHO, "x", "usage: /who"),
        ]:
            with self.assertRaises(CommandError) as caught:
                parse_args(verb, rest)
            error = caught.exception
            self.assertEqual((error.code, error.detail), (ErrorCode.BAD_SYNTAX, usage))

    def test_moderation_arguments(self) -> None:
        for verb, rest, args in [
            (Verb.KICK, "bob", ("bob", "")),
            (Verb.KICK, "bob  spam,  again ", ("bob", "spam,  again")),
            (Verb.TOPIC, "", ("",)),
            (Verb.TOPIC, "  a  topic ", ("a  topic",)),
            (Verb.WALL, "back at noon", ("back at noon",)),
            (Verb.DROP, "Lounge closing", ("Lounge", "closing")),
            (Verb.AUDIT, "", ("50",)),
            (Verb.AUDIT, "007", ("7",)),
            (Verb.DELETE, "2026-12-02T14:02:05.123Z", ("2026-12-02T14:02:05.123Z",)),
            (Verb.OP, "bob", ("bob",)),
            (Verb.OPS, "", ()),
        ]:
            self.assertEqual(parse_args(verb, rest), args, (verb, rest))
        for verb, rest, code in [
            (Verb.KICK, "", ErrorCode.BAD_SYNTAX),
            (Verb.OP, "bob now", ErrorCode.BAD_SYNTAX),
            (Verb.WALL, "  ", ErrorCode.BAD_SYNTAX),
            (Verb.AUDIT, "501", ErrorCode.BAD_SYNTAX),
            (Verb.AUDIT, "0", ErrorCode.BAD_SYNTAX),
            (Verb.DELETE, "yesterday", ErrorCode.BAD_SYNTAX),
            (Verb.DELETE, "2026-13-02T14:02:05.123Z", ErrorCode.BAD_SYNTAX),
            (Verb.BANS, "x", ErrorCode.BAD_SYNTAX),
            (Verb.BAN, "b@d spam", ErrorCode.BAD_NAME),
        ]:
            with self.assertRaises(CommandError) as caught:
                parse_args(verb, rest)
            self.assertEqual(caught.exception.code, code, (verb, rest))

    def test_why_not(self) -> None:
        for verb, state, text in [
            (Verb.ROOMS, State.AUTH, "log in first: login, register, or /help"),
            (Verb.WHO, State.USERNAME, "log in first: login, register, or /help"),
            (Verb.LOGIN, State.LOBBY, "you are already logged in"),
            (Verb.DIALOG, State.IN_ROOM, "you are already logged in"),
            (Verb.SAY, State.LOBBY, "you are not in a room: /join <room> first"),
            (Verb.LEAVE, State.LOBBY, "/leave works only in a room"),
            (Verb.WHO, State.LOBBY, "/who works only in a room"),
        ]:
            self.assertEqual(why_not(verb, state), text)
            self.assertNotIn(state, TABLE[verb].states)
