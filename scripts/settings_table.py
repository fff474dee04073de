"""Print the README's configuration reference from the Settings model."""

from __future__ import annotations

import json

from pydantic_core import PydanticUndefined

from flowdeck.settings import Settings


def _default(field: object) -> str:
    default = getattr(field, "default", PydanticUndefined)
    factory = getattr(field, "default_factory", None)
    if default is PydanticUndefined and factory is not None:
        if getattr(factory, "__name__", "") == "<lambda>" and "cpu_count" in repr(factory.__code__.co_names):
            return "the core count"
        default = factory()
    if default is None:
        return "—"
    if isinstance(default, list):
        return ",".join(default) or "(empty)"
    if isinstance(default, str | int | float | bool):
        return json.dumps(default) if isinstance(default, bool) else str(default)
    return str(default)


def main() -> None:
    print("| variable | default | meaning |")
    print("|---|---|---|")
    for name, field in Settings.model_fields.items():
        env = f"FLOWDECK_{name.upper()}"
        print(f"| `{env}` | `{_default(field)}` | {field.description or ''} |")


if __name__ == "__main__":
    main()
