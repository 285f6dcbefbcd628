"""docs/configuration.md and backend.config.Settings describe the same variables.

A setting added to Settings without a line in the doc fails here, and so does a PARLEY_ variable
the doc mentions that Settings does not read (a typo, or a setting that was removed).
"""

from __future__ import annotations

import re
from pathlib import Path

from backend.config import Settings

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
PREFIX = str(Settings.model_config.get("env_prefix", ""))
VARIABLE = re.compile(rf"\b{re.escape(PREFIX)}[A-Z0-9_]+\b")


def _setting_variables() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        names.add((alias or PREFIX + name).upper())
    return names


def _documented_variables() -> set[str]:
    return set(VARIABLE.findall(DOC.read_text()))


def test_the_prefix_is_parley() -> None:
    assert PREFIX == "PARLEY_"


def test_every_setting_is_documented() -> None:
    missing = _setting_variables() - _documented_variables()
    assert not missing, f"add to docs/configuration.md: {sorted(missing)}"


def test_every_documented_variable_is_a_setting() -> None:
    unknown = _documented_variables() - _setting_variables()
    assert not unknown, f"docs/configuration.md names variables Settings lacks: {sorted(unknown)}"


def test_every_setting_has_a_table_row() -> None:
    rows = {
        match.group(1)
        for match in re.finditer(r"^\| `([A-Z0-9_]+)` \|", DOC.read_text(), re.MULTILINE)
    }
    missing = _setting_variables() - rows
    assert not missing, f"give these a row in a table of docs/configuration.md: {sorted(missing)}"
