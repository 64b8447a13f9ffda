"""The README's reference sections must match the code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from daemon.config import ENV_PREFIX, Config, default_text

README = Path(__file__).resolve().parent.parent / "README.md"


def config_table() -> str:
    rows = ["| TOML key / flag | environment variable | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(Config):
        d = default_text(f.name)
        d = d if f.default is None or f.default == () else f"`{d}`"  # no value: words, not a value to type
        flag = f"`--{f.name.replace('_', '-')}`" + (" (`--stale-after`)" if f.name == "stale_after_s" else "")
        rows.append(f"| `{f.name}` / {flag} | `{ENV_PREFIX}{f.name.upper()}` | {d} | {f.metadata['help']} |")
    return "\n".join(rows)


def test_readme_config_table_matches_the_code():
    text = README.read_text()
    m = re.search(r"<!-- config-table -->\n(.*?)\n<!-- /config-table -->", text, re.S)
    assert m, "README lost its config table markers"
    assert m[1] == config_table(), "README config table is stale; replace it with:\n" + config_table()


def test_readme_quick_start_commands_are_the_real_ones():
    text = README.read_text()
    assert ".venv/bin/pip install -e . && .venv/bin/gravity-led-client demo" in text
    assert "bash tests/run" in text
    assert "bash tests/run" in (README.parent / ".ci" / "run").read_text()
