"""Checks argparse cannot make: an option given to the wrong subcommand, one that this run would ignore.

Pure functions of the parsers and the parsed arguments, each returning the
error sentence (or None), so the unit tier tests them in-process and
``client/cli.py`` prints them as usage errors.
"""

from __future__ import annotations

import argparse
import re
from typing import Mapping

__all__ = ["foreign_option", "ignored_option", "options_of"]

DEMO_URL = (
    "demo starts its own daemon on this machine, so it takes no {flag}; "
    "to stream to a daemon elsewhere, run: gravity-led-client sim --url ADDRESS"
)
_DEMO_CONNECTION = ("--url", "--token-file", "--cafile", "--insecure")


def options_of(parser: argparse.ArgumentParser) -> dict[str, bool]:
    """Each option string of ``parser``, and whether it takes a value."""
    return {o: a.nargs != 0 for a in parser._actions for o in a.option_strings}


def _own(flag: str, own: Mapping[str, bool]) -> str | None:
    """The option ``flag`` stands for: itself, or the one it abbreviates (argparse accepts unique prefixes)."""
    if flag in own:
        return flag
    if flag.startswith("--"):
        matches = [o for o in own if o.startswith(flag)]
        if len(matches) == 1:
            return matches[0]
    return None


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def foreign_option(argv: list[str], parsers: Mapping[str, argparse.ArgumentParser]) -> str | None:
    """For ``argv`` = [SUBCOMMAND, ...]: the sentence for the first option that belongs only to other subcommands.

    An option no subcommand has is left to argparse (which says "unknown option", with a guess).
    """
    command, rest = argv[0], argv[1:]
    own = options_of(parsers[command])
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--":
            break
        if arg.startswith("--") or re.fullmatch(r"-[A-Za-z]", arg):
            flag = arg.split("=", 1)[0]
            mine = _own(flag, own)
            if mine is not None:
                i += 2 if own[mine] and "=" not in arg else 1
                continue
            owners = [name for name, p in parsers.items() if name != command and flag in options_of(p)]
            if owners:
                if command == "demo" and flag in _DEMO_CONNECTION:
                    return DEMO_URL.format(flag=flag)
                return f"{flag} is an option of {_names(owners)}, not of {command}"
        i += 1
    return None


def ignored_option(args: argparse.Namespace) -> str | None:
    """The sentence for an option this run would silently ignore (sim and demo's pattern options)."""
    pattern = getattr(args, "pattern", None)
    if pattern is None:
        return None
    if args.steps is not None and pattern != "steps":
        return f"--steps sets the tilts of --pattern steps only, and this run's pattern is {pattern} (add --pattern steps)"
    if args.seed is not None and pattern != "walk" and not args.noise:
        return f"--seed makes --pattern walk and --noise repeatable, and this run ({pattern}, no --noise) uses neither"
    return None
