"""Explicit state machines: a transition not in the table is a domain error."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from .errors import Conflict


class InvalidTransition(Conflict):
    code = "invalid_state_transition"


@dataclass(frozen=True)
class StateMachine:
    name: str
    transitions: Mapping[str, frozenset[str]]

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


def machine(name: str, table: Mapping[str, set[str] | frozenset[str]]) -> StateMachine:
    return StateMachine(name, {k: frozenset(v) for k, v in table.items()})
