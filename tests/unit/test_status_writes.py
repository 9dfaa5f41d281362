"""Statuses are written in one place per area: its transitions module, one guarded function per
state change (which also writes the change's event). Any other module that writes a status
fails this test: `.values(status=…)`, a model built with `status=…`, a row (a dict with a
"tenant_id") with a "status", or an assignment to `.status`."""
from __future__ import annotations

import ast
from pathlib import Path

import aggregator

ROOT = Path(aggregator.__file__).parent

#: Modules that may name a status without writing one through a transition, and why.
ALLOWED = {
    "payouts/report_service.py": "a report's rows carry the payouts' statuses as read (dataclasses, no writes)",
    "ingest/service.py": "a bill is created in BILL_STATES.initial (the intake hot path's own INSERT)",
    "states.py": "guarded_update, the statement every transition is built on",
    "testmode.py": "a test clock's two states (advancing when moved, ready when caught up), in its two functions",
}


def _keys(node: ast.Dict) -> set:
    return {k.value for k in node.keys if isinstance(k, ast.Constant)}


def _writes_status(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and any(k.arg == "status" for k in node.keywords):
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr == "values") or (
                    isinstance(func, ast.Name) and func.id[:1].isupper()):
                lines.append(node.lineno)
        elif isinstance(node, ast.Dict) and {"status", "tenant_id"} <= _keys(node):
            lines.append(node.lineno)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for element in (target.elts if isinstance(target, ast.Tuple) else [target]):
                    if isinstance(element, ast.Attribute) and element.attr == "status":
                        lines.append(node.lineno)
    return lines


def test_only_transitions_modules_write_a_status():
    offenders = {}
    for path in ROOT.rglob("*.py"):
        name = path.relative_to(ROOT).as_posix()
        if path.name == "transitions.py" or name in ALLOWED or name.endswith(("schemas.py", "models.py")):
            continue  # schemas and models declare statuses (fields, defaults, checks); they do not write
        if lines := _writes_status(ast.parse(path.read_text())):
            offenders[name] = lines
    assert offenders == {}
