"""Command-line mistakes for both programs: one sentence, and "did you mean" (as git and pip say it).

``gravity-led-daemon`` and ``gravity-led-client`` build their parsers from
:class:`UsageParser`, so a bad flag, value or subcommand is one line naming
the option and what it accepts (plus one line pointing to ``--help``), never
argparse's usage block.  The pure parts (:func:`suggest`, :func:`rephrase`,
:func:`unknown_environment`) are what the unit tier tests.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Iterable, Mapping, NoReturn

__all__ = ["ENV_PREFIX", "UsageParser", "did_you_mean", "rephrase", "suggest", "unknown_environment", "usage_error", "usage_message"]

ENV_PREFIX = "GRAVITY_LED_"
EXIT_USAGE = 2
OTHER_ENV = ("CONFIG", "URL", "TOKEN", "TOKEN_FILE", "MOCK_WRITE_TRACE", "TEST_TIME_FACTOR", "PIVM_CACHE")
"""``GRAVITY_LED_*`` variables besides the daemon's options (daemon/config.py): the config file's path,
the client's address and secret, the mock pins' write trace, the test suite's time factor and Pi stand-in cache."""

# Patterns, not compiled: only a mistake needs them (re caches them then), and
# compiling costs start-up time on a Pi Zero.
_INVALID_CHOICE = r"argument (?P<arg>[^:]+): invalid choice: '(?P<value>[^']*)' \(choose from (?P<choices>.*)\)$"
_UNRECOGNIZED = r"unrecognized arguments: (?P<args>.*)$"


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word`` (difflib's ratio, at least 0.6), or None."""
    import difflib  # only for a mistake: not at start-up (a Pi Zero)

    found = difflib.get_close_matches(word, list(dict.fromkeys(candidates)), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``"; did you mean X?"`` for the closest candidate, else ``""``: appended to an error sentence."""
    best = suggest(word, candidates)
    return f"; did you mean {best}?" if best else ""


def rephrase(message: str, options: Iterable[str] = ()) -> str:
    """argparse's error ``message`` as one sentence that names the option, its valid values and a guess.

    ``options`` are the parser's option strings, for guessing a mistyped flag.
    """
    m = re.match(_INVALID_CHOICE, message, re.S)
    if m:
        choices = [c.strip().strip("'") for c in m["choices"].split(",")]
        arg, value = m["arg"], m["value"]
        if arg.isupper() or not arg.startswith("-"):  # the subcommand (its metavar) or a positional
            what = "subcommand" if arg == "SUBCOMMAND" else arg
            return f"unknown {what} {value!r} (choose from {', '.join(choices)}){did_you_mean(value, choices)}"
        return f"{arg} must be one of {', '.join(choices)}, not {value!r}{did_you_mean(value, choices)}"
    m = re.match(_UNRECOGNIZED, message, re.S)
    if m:
        return unrecognized(m["args"].split(), options)
    return re.sub(r"^argument ([^:]+): ", r"\1: ", message)  # "--rate: 'abc' is not a positive number"


def unrecognized(extra: list[str], options: Iterable[str]) -> str:
    """The sentence for arguments no option or positional took, with a guess for a mistyped flag."""
    options = list(options)
    flags = [a.split("=", 1)[0] for a in extra if a.startswith("-") and len(a) > 1 and not re.match(r"-[\d.]", a)]
    if flags:
        return f"unknown option {flags[0]}{did_you_mean(flags[0], options)}"
    return f"unexpected argument{'s' if len(extra) > 1 else ''}: {' '.join(extra)}"


def usage_message(prog: str, message: str) -> str:
    """``PROG: error: MESSAGE`` and the line pointing to --help."""
    return f"{prog}: error: {message}\nRun '{prog} --help' for the options.\n"


def usage_error(prog: str, message: str) -> NoReturn:
    """Print :func:`usage_message` on stderr and exit 2 (argparse's status)."""
    sys.stderr.write(usage_message(prog, message))
    sys.stderr.flush()
    raise SystemExit(EXIT_USAGE)


class UsageParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are :func:`rephrase`'d to one sentence, without the usage block.

    Subcommand parsers (``add_subparsers(parser_class=...)`` inherits it) are
    named ``PROG SUBCOMMAND``, so the error's prefix names the subcommand.
    """

    def option_strings(self) -> list[str]:
        return [o for a in self._actions for o in a.option_strings]

    def error(self, message: str) -> NoReturn:
        usage_error(self.prog, rephrase(message, self.option_strings()))


def unknown_environment(env: Mapping[str, str], known: Iterable[str]) -> list[str]:
    """A warning for each ``GRAVITY_LED_*`` variable that nothing reads, naming the closest one that is read.

    ``known`` are the suffixes after the prefix (``PORT``, ``URL``...).
    """
    known = list(known)
    warnings = []
    for key in sorted(env):
        name = key.removeprefix(ENV_PREFIX)
        if key.startswith(ENV_PREFIX) and name not in known:
            best = suggest(name, known)  # the part after the prefix: every name shares the prefix
            guess = f"; did you mean {ENV_PREFIX}{best}?" if best else " (gravity-led-daemon --help lists the options)"
            warnings.append(f"warning: the environment variable {key} is not an option, so it is ignored{guess}")
    return warnings
