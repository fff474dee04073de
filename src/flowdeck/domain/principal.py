"""Who is asking: the caller of an API request or the cause of an event."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["member", "admin"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    ``groups`` maps research group name to the caller's role there. A service
    admin (``is_admin``) sees everything. ``unrestricted`` marks the local
    default (auth mode ``none``): one person on their own machine, who sees
    everything and may name any research group.
    """

    name: str
    groups: dict[str, Role] = field(default_factory=dict)
    is_admin: bool = False
    unrestricted: bool = False
    via: str = "none"

    @property
    def sees_all(self) -> bool:
        """True when no research-group filter applies."""
        return self.is_admin or self.unrestricted

    def visible_groups(self) -> frozenset[str] | None:
        """The groups whose objects the caller may see; ``None`` means all."""
        return None if self.sees_all else frozenset(self.groups)

    def can_see(self, group: str | None) -> bool:
        """True when an object of ``group`` is visible (ungrouped objects: admins only)."""
        if self.sees_all:
            return True
        return group is not None and group in self.groups

    def is_group_admin(self, group: str) -> bool:
        return self.sees_all or self.groups.get(group) == "admin"


LOCAL_USER = Principal(name="local", unrestricted=True, via="none")
SYSTEM = Principal(name="system", is_admin=True, via="system")
# A caller who sent no credentials, on the few routes open to anyone: member of no group.
ANONYMOUS = Principal(name="anonymous", via="anonymous")
