"""Explicit state machines: a transition not in the table is a domain error.

Each area writes the statuses of its objects in one module only, `<area>/transitions.py`: one
guarded function per state change, derived from the area's state table, which also writes the
event announcing the change in the same transaction (tests/unit/test_status_writes.py holds
every other module to it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import sqlalchemy as sa

from .errors import Conflict


class InvalidTransition(Conflict):
    code = "invalid_state_transition"


@dataclass(frozen=True)
class StateMachine:
    name: str
    transitions: Mapping[str, frozenset[str]]
    column: str = "status"  # the column holding the state

    @property
    def initial(self) -> str:
        """The state objects are created in: the first of the table."""
        return next(iter(self.transitions))

    @property
    def states(self) -> frozenset[str]:
        return frozenset(self.transitions)

    def allows(self, current: str, target: str) -> bool:
        return target in self.transitions.get(current, frozenset())

    def sources(self, target: str) -> frozenset[str]:
        """The states from which `target` may be reached (for guarded UPDATE … WHERE status IN …)."""
        return frozenset(s for s, targets in self.transitions.items() if target in targets)

    def check(self, current: str, target: str) -> None:
        if not self.allows(current, target):
            raise InvalidTransition(f"A {current} {self.name} cannot become {target}.")


def machine(name: str, table: Mapping[str, set[str] | frozenset[str]], column: str = "status") -> StateMachine:
    return StateMachine(name, {k: frozenset(v) for k, v in table.items()}, column)


def guarded_update(states: StateMachine, table: sa.Table, target: str, *where, **values) -> sa.Update:
    """UPDATE `table` rows matching `where` to `target`, only those in a state from which the
    table allows it (the guard is in the statement, so a concurrent change cannot slip past
    it); other columns set from `values`. The caller executes it and checks what changed."""
    sources = [sa.literal_column(f"'{state}'") for state in sorted(states.sources(target))]  # inline, so
    return (sa.update(table)                                                # executemany can run it
            .where(*where, table.c[states.column].in_(sources))
            .values(**{states.column: target}, **values))
