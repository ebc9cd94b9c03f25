"""Who may do what: a staff member's role from explicit user and department mappings.

Order: the user's own entry, then their departments' entries, then `manager` for department
leaders (WeCom's is_leader_in_dept), else the default. The file is TOML:

    default = "sales"
    [users]
    liuyang = "manager"
    [departments]
    3 = "support"
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("sales", "support", "manager", "admin")


@dataclass(frozen=True)
class RoleMap:
    users: dict[str, str] = field(default_factory=dict)
    departments: dict[int, str] = field(default_factory=dict)
    default: str = "sales"

    def __post_init__(self) -> None:
        bad = [r for r in (*self.users.values(), *self.departments.values(), self.default) if r not in ROLES]
        if bad:
            raise ValueError(f"unknown role(s) {sorted(set(bad))} in role map; use one of {', '.join(ROLES)}")

    def role_for(self, userid: str, department_ids: list[int], *, is_leader: bool = False) -> str:
        if userid in self.users:
            return self.users[userid]
        for department in department_ids:
            if department in self.departments:
                return self.departments[department]
        return "manager" if is_leader else self.default

    @classmethod
    def from_file(cls, path: str | Path) -> "RoleMap":
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        return cls(
            users={str(k): str(v) for k, v in data.get("users", {}).items()},
            departments={int(k): str(v) for k, v in data.get("departments", {}).items()},
            default=str(data.get("default", "sales")),
        )
