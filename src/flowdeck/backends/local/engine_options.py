"""Engine parameters a user may set: each allowed flag, and the closed shape of its value."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from flowdeck.errors import InvalidInput

_SIZE = re.compile(r"\d+(\.\d+)?([KMGTP]i?B?)?", re.IGNORECASE)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


@dataclass(frozen=True)
class Option:
    """One allowed engine parameter: its command-line flag and the values it takes.

    Values are checked against a closed shape (integer, size, name, choice,
    flag), so no value can smuggle another option into the engine's argv.
    """

    flag: str
    kind: Literal["flag", "int", "choice", "size", "name"]
    choices: tuple[str, ...] = ()
    low: int = 0
    high: int = 10_000
    default: str = ""

    def args(self, name: str, value: str) -> list[str]:
        """The argv words for ``value``, or InvalidInput."""
        text = str(value).strip()
        if self.kind == "flag":
            if text.lower() in {"", "true", "1", "yes"}:
                return [self.flag]
            if text.lower() in {"false", "0", "no"}:
                return []
            raise InvalidInput(f"engine parameter {name} is a flag: use true or false")
        ok = {
            "int": text.isdigit() and self.low <= int(text) <= self.high,
            "choice": text in self.choices,
            "size": bool(_SIZE.fullmatch(text)),
            "name": bool(_NAME.fullmatch(text)),
        }[self.kind]
        if not ok:
            shape = {
                "int": f"an integer within {self.low}..{self.high}",
                "choice": "one of " + ", ".join(self.choices),
                "size": "a size such as 512M or 4G",
                "name": "a name (letters, digits, _ and .)",
            }[self.kind]
            raise InvalidInput(f"engine parameter {name} must be {shape}, not {text!r}")
        return [self.flag, text]


def engine_args(params: Mapping[str, str], options: Mapping[str, Option]) -> list[str]:
    """The argv words for a run's allowed engine parameters (unknown ones: InvalidInput)."""
    words: list[str] = []
    for name in sorted(params):
        if name not in options:
            raise InvalidInput(f"engine parameter {name} is not allowed")
        words += options[name].args(name, params[name])
    return words
