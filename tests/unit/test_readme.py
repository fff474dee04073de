"""The README documents every setting, with its default."""

from __future__ import annotations

from pathlib import Path

from flowdeck.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_configuration_reference() -> None:
    text = README.read_text()
    missing = [name for name in Settings.model_fields if f"`FLOWDECK_{name.upper()}`" not in text]
    assert not missing, f"add to README (python scripts/settings_table.py): {missing}"


def test_the_two_set_up_commands_are_there() -> None:
    text = README.read_text()
    assert "make run" in text
    assert "make test" in text
