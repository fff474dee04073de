"""cwltool for warm starts (:mod:`flowdeck.backends.local.warm_start`): imported and its CWL schemas
parsed once, then run per run in a fork.

``cwltool.main.run`` is what the ``cwltool`` command calls. Each call of it would
throw the parsed schemas away and parse them again (~0.6 s of CPU): it resets
them to the standard ones unless given ``custom_schema_callback``. The schemas
parsed here *are* the standard ones, so the callback leaves them in place;
``--enable-ext`` (not on the engine parameter allowlist) keeps cwltool's own path.
"""

from __future__ import annotations

import cwltool.main
import cwltool.process

_VERSIONS = ("v1.0", "v1.1", "v1.2")


def preload() -> None:
    """Parse the standard schemas of every CWL version flowdeck accepts."""
    for version in _VERSIONS:
        cwltool.process.get_schema(version)


def _keep_standard_schemas() -> None:
    """Schema set-up that keeps the standard schemas :func:`preload` parsed."""


def run(argv: list[str]) -> int:
    """What the ``cwltool`` command does with ``argv`` (``argv[0]`` is the command)."""
    args = argv[1:]
    if "--enable-ext" in args:
        return cwltool.main.run(args)
    return cwltool.main.run(args, custom_schema_callback=_keep_standard_schemas)
