"""Answers built from stored rows: always encodable, even for rows stored before the strict rule.

Since ``domain.json_values`` no run can be stored with a value JSON cannot carry. A database
written before it may still hold one (a non-finite number such as ``1e400`` read back as
infinity, a lone surrogate), and encoding it failed the whole answer with a 500: one bad run
broke every list page that showed it. Views and lists answer with :class:`ReadableJSONResponse`:
encoding costs nothing extra until it fails; then the unencodable values are replaced
(``json_values.readable``), the JSON pointers are logged as a warning, and the answer is sent.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi.responses import JSONResponse

from flowdeck.domain import json_values

log = logging.getLogger(__name__)


class ReadableJSONResponse(JSONResponse):
    """A JSONResponse that answers a stored unencodable value with a placeholder, never a 500."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
            fixed, replaced = json_values.readable(content)
            log.warning(
                "stored values JSON cannot carry were answered with placeholders at %s "
                "(stored before flowdeck refused them; see docs/errors.md)",
                ", ".join(replaced) or "?",
            )
            return super().render(fixed)
