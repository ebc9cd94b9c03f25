"""Who works support tickets, and who may see one: read from the staff table at the moment it matters.

A ticket group's agents are the active staff members with the support role whom the WeCom
directory puts in the departments (id or name), member tags or userids the routing config names
(config/tickets.toml [routing] and [groups.*], or the deployment's SCRM_TICKET_ROUTING_FILE). The
group's managers are the active managers who share a department with those agents (the admins when
there are none): they hear about tickets nobody can take and about SLA breaches.

The one rule for who may see a ticket, in chat and in the API alike: the assignee, the agents and
managers of the ticket's group, the customer's owner, the managers of the owner's departments, and
the admins (the last three are crm_core.scope's reach for that customer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.models import Customer, Department, Staff
from crm_core.scope import Scope
from crm_core.ticket_models import Ticket

AGENT_ROLE = "support"
SELECTOR_KEYS = ("agent_departments", "agent_tags", "agent_users")


@dataclass(frozen=True)
class AgentSelector:
    """Which directory members are a group's agents: any of these departments, tags or userids."""

    departments: tuple[int | str, ...] = ()  # WeCom department ids, or names as in the directory
    tags: tuple[str, ...] = ()  # WeCom member tags (通讯录标签)
    users: tuple[str, ...] = ()  # userids, for a company without a support department or tag

    def __bool__(self) -> bool:
        return bool(self.departments or self.tags or self.users)

    def describe(self) -> str:
        parts = [(f"department {', '.join(map(str, self.departments))}", self.departments),
                 (f"tag {', '.join(self.tags)}", self.tags), (f"user {', '.join(self.users)}", self.users)]
        return "; ".join(text for text, values in parts if values) or "nobody"

    @classmethod
    def from_table(cls, table: dict[str, Any], where: str) -> AgentSelector:
        """`agent_departments`, `agent_tags`, `agent_users` of a TOML table; ValueError says what is wrong."""
        def values(key: str, types: tuple[type, ...]) -> tuple:
            raw = table.get(key, [])
            if not isinstance(raw, list) or not all(isinstance(v, types) and not isinstance(v, bool) for v in raw):
                kinds = "department ids or names" if int in types else "strings"
                raise ValueError(f"{where}.{key} must be a list of {kinds}")
            return tuple(v.strip() if isinstance(v, str) else v for v in raw)

        return cls(values("agent_departments", (int, str)), values("agent_tags", (str,)), values("agent_users", (str,)))


class SupportTeam:
    """The agents and managers of each ticket group, from one read of the active staff (cached for
    the life of the object, which is one command, one message or one job run)."""

    def __init__(self, session: AsyncSession, selectors: dict[str, AgentSelector]):
        self.session = session
        self.selectors = selectors
        self._staff: list[Staff] | None = None
        self._names: dict[str, set[int]] = {}

    async def _load(self) -> list[Staff]:
        if self._staff is None:
            self._staff = list((await self.session.scalars(
                select(Staff).where(Staff.active.is_(True)).order_by(Staff.id))).all())
            names = {d for s in self.selectors.values() for d in s.departments if isinstance(d, str)}
            if names:
                for department_id, name in (await self.session.execute(
                        select(Department.id, Department.name).where(Department.name.in_(sorted(names))))).all():
                    self._names.setdefault(name, set()).add(department_id)
        return self._staff

    def _department_ids(self, selector: AgentSelector) -> set[int]:
        ids: set[int] = set()
        for department in selector.departments:
            ids |= {department} if isinstance(department, int) else self._names.get(department, set())
        return ids

    def _selected(self, staff: Staff, selector: AgentSelector, departments: set[int]) -> bool:
        return bool(staff.userid in selector.users or departments & set(staff.department_ids or [])
                    or set(selector.tags) & set(staff.tags or []))

    async def members(self, group: str) -> list[Staff]:
        """Everyone the group's selector names, whatever their role (for explaining a configuration)."""
        selector = self.selectors.get(group, AgentSelector())
        staff = await self._load()
        departments = self._department_ids(selector)
        return [s for s in staff if self._selected(s, selector, departments)]

    async def agents(self, group: str) -> list[Staff]:
        return [s for s in await self.members(group) if s.role == AGENT_ROLE]

    async def managers(self, group: str) -> list[Staff]:
        """Managers sharing a department with the group's agents (or the departments it names);
        the admins when there are none, so trouble always reaches someone who can act."""
        staff = await self._load()
        departments = self._department_ids(self.selectors.get(group, AgentSelector()))
        for agent in await self.agents(group):
            departments |= set(agent.department_ids or [])
        managers = [s for s in staff if s.role == "manager" and departments & set(s.department_ids or [])]
        return managers or [s for s in staff if s.role == "admin"]

    async def groups_of(self, staff: Staff) -> set[str]:
        """The groups whose tickets `staff` works on or answers for."""
        groups = set()
        for group in self.selectors:
            if any(s.id == staff.id for s in [*await self.agents(group), *await self.managers(group)]):
                groups.add(group)
        return groups

    async def anyone(self) -> bool:
        """Whether at least one group has an agent: the ticket intake waits for this."""
        for group in self.selectors:
            if await self.agents(group):
                return True
        return False


class TicketAccess:
    """The one rule for seeing a ticket (module docstring), for one staff member, as a check and as
    a query filter. Acting on a ticket is narrower; bot.handlers.tickets decides that."""

    def __init__(self, team: SupportTeam, staff: Staff | None, scope: Scope):
        self.team, self.staff, self.scope = team, staff, scope

    async def allows(self, ticket: Ticket) -> bool:
        if self.scope.everyone or self.scope.allows(ticket.customer):
            return True
        if self.staff is None:
            return False
        return ticket.assignee_id == self.staff.id or ticket.group in await self.team.groups_of(self.staff)

    async def where(self) -> list[ColumnElement[bool]]:
        if self.scope.everyone:
            return []
        if self.staff is None:
            return [false()]
        groups = sorted(await self.team.groups_of(self.staff))
        return [or_(Ticket.customer_id.in_(select(Customer.id).where(*self.scope.where())),
                    Ticket.assignee_id == self.staff.id, Ticket.group.in_(groups))]
