"""The suite's own layout: a test module imports helpers from tests/support (or the fake servers
beside it), never from another test module or a conftest, so moving or deleting a test never breaks
another. Shared fixtures are in conftest.py files or in support modules registered as plugins."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _imported(path: Path, root: Path = TESTS.parent) -> list[tuple[int, str]]:
    """Every module `path` (under `root`) imports, absolute: relative imports resolved against
    its package."""
    package = ".".join(path.relative_to(root).parent.parts)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]  # `from pkg import test_x`
    return found


def _is_test_module(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return module.startswith("tests.") and (last.startswith("test_") or last == "conftest")


def test_no_module_of_the_suite_imports_a_test_module_or_a_conftest():
    offenders = [f"{path.relative_to(TESTS.parent)}:{line}: imports {module}"
                 for path in sorted(TESTS.rglob("*.py"))
                 for line, module in _imported(path) if _is_test_module(module)]
    assert not offenders, "move the helper to tests/support:\n" + "\n".join(offenders)


def test_the_check_sees_every_way_of_importing_a_test_module(tmp_path):
    (tmp_path / "tests" / "e2e").mkdir(parents=True)
    examples = {"from tests.e2e.test_invoices_api import send": True, "import tests.e2e.test_charges": True,
                "from tests.e2e import test_charges as charges": True, "from .test_charges import _invoice": True,
                "from . import conftest": True, "from ..conftest import Caller": True,
                "from tests.support.invoicing import send": False, "from tests.stripe_peer import PeerServer": False}
    path = tmp_path / "tests" / "e2e" / "test_example.py"
    for source, offends in examples.items():
        path.write_text(source + "\n")
        assert any(_is_test_module(m) for _, m in _imported(path, tmp_path)) == offends, source
