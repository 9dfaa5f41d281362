"""Domain events inside the transaction: how a consequence travels up the layers without the
lower layer importing the higher one (cosmicpython's message bus, kept synchronous).

A transition that changes something publishes a *fact* (a frozen dataclass subclassing
`Fact`, defined in the publishing area's `facts.py`) carrying the amounts it already computed.
Subscribers, registered once by the composition root (`aggregator.wiring`), handle it at once,
in the same database transaction: the ledger's journal, for example, is written before COMMIT,
so the books balance at every commit, and a handler that fails rolls the change back with it.

Nothing here knows any area. `publish` calls the handlers subscribed to the fact's class and to
each of its base classes, in subscription order; a fact that reaches none is refused (`Unheard`),
so a process that forgot to wire cannot move money without its journal.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, TypeVar


@dataclass(frozen=True)
class Fact:
    """Something that happened, named in the past tense (`InvoicesFinalized`)."""


F = TypeVar("F", bound=Fact)
Handler = Callable[[F], None]

_handlers: dict[type[Fact], list[Handler[Any]]] = {}


def subscribe(fact: type[F], handler: Handler[F]) -> None:
    """Call `handler` with every published `fact` (or subclass of it). Subscribing the same
    handler twice is one subscription (an app factory may run many times in one process)."""
    handlers = _handlers.setdefault(fact, [])
    if handler not in handlers:
        handlers.append(handler)


def handlers_of(fact: type[Fact]) -> list[Handler[Any]]:
    """The handlers a fact of class `fact` reaches, in order."""
    return [handler for cls in reversed(fact.__mro__) for handler in _handlers.get(cls, ())]


class Unheard(RuntimeError):
    """A fact was published with no handler subscribed: this process was not wired (the
    composition root calls `aggregator.wiring.wire()`), and what should follow from the fact
    (the ledger's journal) would silently not happen."""


def publish(fact: Fact) -> None:
    """Handle `fact` now, in the caller's transaction: a handler's exception propagates. A fact
    no handler hears is refused (`Unheard`): every fact has a subscriber once wired."""
    handlers = handlers_of(type(fact))
    if not handlers:
        raise Unheard(f"{type(fact).__name__} has no subscriber: was aggregator.wiring.wire() called?")
    for handler in handlers:
        handler(fact)


@contextmanager
def subscriptions(extra: dict[type[Fact], list[Handler[Any]]] | None = None,
                  without: Iterable[Handler[Any]] = ()) -> Iterator[None]:
    """Tests: the subscriptions as they are, less the handlers `without` (what happened before
    a subscriber was wired), plus `extra`, restored afterwards."""
    saved = {fact: list(handlers) for fact, handlers in _handlers.items()}
    left_out = list(without)
    for handlers in _handlers.values():
        handlers[:] = [handler for handler in handlers if handler not in left_out]
    for fact, handlers in (extra or {}).items():
        for handler in handlers:
            subscribe(fact, handler)
    try:
        yield
    finally:
        _handlers.clear()
        _handlers.update(saved)
