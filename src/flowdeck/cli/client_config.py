"""The per-user client config that ``flowdeck login`` writes: server URL and API token.

``$XDG_CONFIG_HOME/flowdeck/config.toml`` (default ``~/.config/flowdeck/config.toml``), mode 0600 in a
0700 folder, because it holds a credential.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any


def config_path() -> Path:
    """Where the client config lives."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "flowdeck" / "config.toml"


def load_config() -> dict[str, Any]:
    """The saved config ({} when there is none); an unreadable one is one line, not a traceback."""
    path = config_path()
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        from flowdeck.cli.client_errors import UsageError

        raise UsageError(f"{path} is not valid TOML ({exc}); fix or remove it, or run flowdeck login") from None


def save_config(values: dict[str, str]) -> Path:
    """Write ``values`` (strings) as the config, readable by its owner only."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # JSON string escapes are valid TOML basic-string escapes for everything json.dumps emits.
    text = "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an older file keeps its mode on O_CREAT
        handle.write(text)
    return path
