"""Command-line mistakes, in-process: one sentence, a guess for typos, options in the wrong place, summaries that add up."""

from __future__ import annotations

import argparse
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gravity_led.client.argcheck import foreign_option, ignored_option
from gravity_led.client.cli import _subcommands, build_parser, environment_warnings, normalize_argv, parse_args
from gravity_led.client.session import Summary
from gravity_led.daemon.cli import build_parser as daemon_parser
from gravity_led.daemon.config import ConfigError, load_config
from gravity_led.daemon.protocol import Vector
from gravity_led.daemon.usage import did_you_mean, rephrase, suggest, unknown_environment


def _error(parse, capsys) -> list[str]:
    """The lines a usage error printed (it exits 2)."""
    with pytest.raises(SystemExit) as e:
        parse()
    assert e.value.code == 2
    return capsys.readouterr().err.splitlines()


# ---- the shared parts ---------------------------------------------------------------------


def test_suggest_finds_typos_and_nothing_for_strangers() -> None:
    assert suggest("smi", ["sim", "stdin", "send"]) == "sim"
    assert suggest("sned", ["sim", "stdin", "send"]) == "send"
    assert suggest("make-crt", ["make-cert"]) == "make-cert"
    assert suggest("frobnicate", ["sim", "stdin", "send"]) is None
    assert did_you_mean("prot", ["port", "host"]) == "; did you mean port?"
    assert did_you_mean("zzz", ["port"]) == ""


def test_argparse_messages_become_one_sentence_naming_the_valid_values() -> None:
    assert rephrase("argument --axis: invalid choice: 'w' (choose from 'x', 'y', 'z')") == "--axis must be one of x, y, z, not 'w'"
    assert rephrase("argument --pattern: invalid choice: 'swep' (choose from 'rock', 'sweep')").endswith("; did you mean sweep?")
    assert rephrase("unrecognized arguments: --pattren sweep", ["--pattern", "--rate"]) == "unknown option --pattren; did you mean --pattern?"
    assert rephrase("argument --rate: 'abc' is not a positive number") == "--rate: 'abc' is not a positive number"


def test_unknown_environment_variables_are_warned_about_with_the_closest_name() -> None:
    env = {"GRAVITY_LED_PROT": "1", "GRAVITY_LED_FOO": "1", "GRAVITY_LED_PORT": "1", "GRAVITY_LED_URL": "x", "HOME": "/"}
    warnings = unknown_environment(env, ["PORT", "URL"])
    assert len(warnings) == 2
    assert "GRAVITY_LED_FOO is not an option" in warnings[0] and "did you mean" not in warnings[0]
    assert warnings[1].endswith("GRAVITY_LED_PROT is not an option, so it is ignored; did you mean GRAVITY_LED_PORT?")


def test_each_program_knows_the_other_programs_variables() -> None:
    """A shell that runs both sets both: GRAVITY_LED_PORT (the daemon's) is no typo to the client, nor _URL to the daemon."""
    from gravity_led.daemon.config import environment_warnings as daemon_warnings

    shared = {"GRAVITY_LED_PORT": "1", "GRAVITY_LED_URL": "x", "GRAVITY_LED_TOKEN_FILE": "t", "GRAVITY_LED_CONFIG": "/dev/null"}
    assert environment_warnings(shared) == [] and daemon_warnings(shared) == []
    assert "did you mean GRAVITY_LED_URL?" in environment_warnings({"GRAVITY_LED_URLL": "x"})[0]


def test_a_mistyped_toml_key_gets_a_guess(tmp_path) -> None:
    path = tmp_path / "daemon.toml"
    path.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match=r"unknown option 'prot' in config file .*; did you mean port\?$"):
        load_config(argparse.Namespace(config=str(path)), {})


# ---- the daemon's command line --------------------------------------------------------------


def test_daemon_bad_choice_is_one_sentence_and_a_pointer_to_help(capsys) -> None:
    lines = _error(lambda: daemon_parser().parse_args(["--pin-factory", "mock", "--axis", "w"]), capsys)
    assert lines == ["gravity-led-daemon: error: --axis must be one of x, y, z, not 'w'", "Run 'gravity-led-daemon --help' for the options."]


def test_daemon_usage_shows_make_cert() -> None:
    assert "gravity-led-daemon make-cert" in daemon_parser().format_usage()


# ---- the client's command line ---------------------------------------------------------------


def _foreign(*argv: str) -> str | None:
    p = build_parser()
    return foreign_option(normalize_argv(p, list(argv)), _subcommands(p))


def test_options_of_another_subcommand_are_named_as_such() -> None:
    assert _foreign("--pattern", "sweep", "send", "0", "1", "2") == "--pattern is an option of sim and demo, not of send"
    assert "demo starts its own daemon" in _foreign("demo", "--url", "localhost")
    assert "takes no --insecure" in _foreign("demo", "--insecure")
    assert _foreign("send", "--speed", "2", "0", "1", "2") == "--speed is an option of replay, not of send"


@pytest.mark.parametrize(
    "argv",
    [["send", "0", "-4.9", "8.5"], ["sim", "--steps", "-60,0,60", "--pattern", "steps"], ["sim", "--dur", "2"], ["--url", "x", "sim"], ["sim", "--unknown"]],
)
def test_own_options_values_and_unknown_options_are_not_foreign(argv: list[str]) -> None:
    assert _foreign(*argv) is None  # (an unknown option is argparse's to report, with a guess)


@pytest.mark.parametrize(
    "argv, said",
    [
        (["sim", "--steps", "1,2"], "--steps sets the tilts of --pattern steps only, and this run's pattern is rock (add --pattern steps)"),
        (["demo", "--pattern", "sweep", "--steps", "10"], "this run's pattern is sweep"),
        (["sim", "--seed", "3"], "--seed makes --pattern walk and --noise repeatable"),
    ],
)
def test_options_this_run_would_ignore_are_errors(argv: list[str], said: str, capsys) -> None:
    lines = _error(lambda: parse_args(build_parser(), argv), capsys)
    assert lines[0].startswith(f"gravity-led-client {argv[0]}: error: ") and said in lines[0] and len(lines) == 2


@pytest.mark.parametrize("argv", [["sim", "--seed", "3", "--pattern", "walk"], ["sim", "--seed", "3", "--noise", "2"], ["sim", "--pattern", "steps", "--steps", "5"]])
def test_options_that_are_used_pass(argv: list[str]) -> None:
    assert ignored_option(parse_args(build_parser(), argv)) is None


@pytest.mark.parametrize("steps", ["1,,2", ",", "1,", "a,b"])
def test_steps_with_an_empty_or_bad_item_are_refused(steps: str, capsys) -> None:
    lines = _error(lambda: parse_args(build_parser(), ["sim", "--pattern", "steps", "--steps", steps]), capsys)
    assert lines[0] == f"gravity-led-client sim: error: --steps: {steps!r} is not a comma-separated list of angles such as -60,0,60"


@pytest.mark.parametrize("word, guess", [("smi", "sim"), ("sned", "send"), ("replya", "replay")])
def test_a_mistyped_subcommand_gets_a_guess(word: str, guess: str, capsys) -> None:
    lines = _error(lambda: parse_args(build_parser(), [word]), capsys)
    assert lines[0] == f"gravity-led-client: error: unknown subcommand {word!r}; did you mean {guess}?"


def test_a_subcommand_error_names_the_subcommand_not_the_usage_line(capsys) -> None:
    lines = _error(lambda: parse_args(build_parser(), ["sim", "--rate", "abc"]), capsys)
    assert lines == ["gravity-led-client sim: error: --rate: 'abc' is not a positive number", "Run 'gravity-led-client sim --help' for the options."]


# ---- summaries ---------------------------------------------------------------------------------


@given(sent=st.integers(2, 100_000), elapsed=st.floats(0.5, 10_000))
def test_the_rate_is_the_frames_divided_by_the_printed_duration(sent: int, elapsed: float) -> None:
    line = Summary(sent, 0, elapsed, 1, False).describe()
    m = re.fullmatch(r"sent (\d+) frames in ([\d.]+) s \(([\d.]+) per second\)", line)
    assert m, line
    assert abs(int(m[1]) / float(m[2]) - float(m[3])) <= 0.05 + 1e-9, line


def test_one_frame_with_the_daemons_answer_reads_as_send() -> None:
    s = Summary(1, 0, 0.0, 1, False, leds=(0.5, 0.0), only=Vector(0.0, 4.9, 8.5))
    assert s.describe() == "sent 0.0 4.9 8.5: right LED 50%, left LED 0%"
    many = Summary(3, 0, 0.0, 1, False, leds=(0.0, 0.5))
    assert many.describe() == "sent 3 frames in 0.00 s; at the end: right LED 0%, left LED 50%"
