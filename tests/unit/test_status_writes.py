"""Statuses are written in one place per area: its transitions module, one guarded function per
state change (which also writes the change's event). Any other module that writes a status
fails this test: `.values(status=…)`, a model built with `status=…`, a row (a dict with a
"tenant_id") with a "status", or an assignment to `.status`.

Every state table (`*_STATES = machine(…)`) is held to it, whatever its column: a table kept in
another column than `status` (the invoices' `collection`, COLLECTION_STATES) is written by the
transitions module that defines the table, and by no other, nor are the columns that move with
it (COMPANIONS)."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import aggregator
from aggregator.states import StateMachine

ROOT = Path(aggregator.__file__).parent

#: Modules that may name a status without writing one through a transition, and why.
ALLOWED = {
    "payouts/report_service.py": "a report's rows carry the payouts' statuses as read (dataclasses, no writes)",
    "ingest/service.py": "a bill is created in BILL_STATES.initial (the intake hot path's own INSERT)",
    "states.py": "guarded_update, the statement every transition is built on",
    "testmode.py": "a test clock's two states (advancing when moved, ready when caught up), in its two functions",
}


#: Columns that change with a state table's column and are written where it is, and only there.
COMPANIONS = {"collection": ("next_charge_at", "attempt_count", "first_failed_at", "amount_paid")}
#: Another table's column of the same name, and where it is written.
HOMONYMS = {("webhooks/delivery.py", "attempt_count"): "a webhook delivery's attempts, not an invoice's"}


def _keys(node: ast.Dict) -> set:
    return {k.value for k in node.keys if isinstance(k, ast.Constant)}


def _writes_status(tree: ast.AST, column: str = "status") -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and any(k.arg == column for k in node.keywords):
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr == "values") or (
                    isinstance(func, ast.Name) and func.id[:1].isupper()):
                lines.append(node.lineno)
        elif isinstance(node, ast.Dict) and {column, "tenant_id"} <= _keys(node):
            lines.append(node.lineno)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for element in (target.elts if isinstance(target, ast.Tuple) else [target]):
                    if isinstance(element, ast.Attribute) and element.attr == column:
                        lines.append(node.lineno)
    return lines


def _modules() -> dict[str, ast.AST]:
    return {path.relative_to(ROOT).as_posix(): ast.parse(path.read_text()) for path in ROOT.rglob("*.py")}


def _state_tables(modules: dict[str, ast.AST]) -> dict[str, tuple[str, StateMachine]]:
    """Every `*_STATES = machine(…)` of the package: its name -> (its module, the table)."""
    found = {}
    for name, tree in modules.items():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                    and getattr(node.value.func, "id", None) == "machine"):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id.endswith("_STATES"):
                        module = importlib.import_module("aggregator." + name.removesuffix(".py").replace("/", "."))
                        found[target.id] = (name, getattr(module, target.id))
    return found


def test_every_state_table_is_found_with_its_column():
    tables = _state_tables(_modules())
    assert all(isinstance(table, StateMachine) for _, table in tables.values())
    assert {"INVOICE_STATES", "PAYMENT_STATES", "PAYOUT_STATES", "COLLECTION_STATES"} <= tables.keys()
    assert tables["COLLECTION_STATES"] == ("payments/transitions.py", tables["COLLECTION_STATES"][1])
    assert tables["COLLECTION_STATES"][1].column == "collection"


def test_only_transitions_modules_write_a_status():
    modules = _modules()
    offenders = {}
    for name, tree in modules.items():
        if name.endswith("/transitions.py") or name in ALLOWED or name.endswith(("schemas.py", "models.py")):
            continue  # schemas and models declare statuses (fields, defaults, checks); they do not write
        if lines := _writes_status(tree):
            offenders[name] = lines
    assert offenders == {}


def test_a_state_kept_in_another_column_is_written_by_its_own_transitions_only():
    modules = _modules()
    offenders = {}
    for table_name, (owner, table) in _state_tables(modules).items():
        if table.column == "status":
            continue
        for column in (table.column, *COMPANIONS.get(table.column, ())):
            for name, tree in modules.items():
                if name == owner or name.endswith(("schemas.py", "models.py")) or (name, column) in HOMONYMS:
                    continue
                if lines := _writes_status(tree, column):
                    offenders[f"{name}: {column} ({table_name})"] = lines
    assert offenders == {}
