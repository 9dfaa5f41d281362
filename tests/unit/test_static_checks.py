"""bin/check's verdict on pip-audit's report: a known vulnerability fails; no vulnerability data
reachable is SKIPPED (said so), a failure only with AUDIT_REQUIRED=1. pip-audit itself is replaced
by a script printing a report as it does (the real one needs vulnerability data this machine cannot
reach); bandit, lint-imports, mypy and ruff by ones that find nothing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.config import PROJECT_ROOT

VULNERABLE = [{"name": "jinja2", "version": "3.1.2", "vulns": [
    {"id": "GHSA-h5c8-rqwp-cp95", "fix_versions": ["3.1.3"], "aliases": [], "description": "XSS"}]},
    {"name": "flask", "version": "3.1.3", "vulns": []}]
UNREACHABLE = [{"name": n, "version": "1.0", "skip_reason": f"Dependency not found on PyPI and could not be audited: "
                f"{n} (1.0)"} for n in ("flask", "jinja2")]
PARTLY = [UNREACHABLE[0], {"name": "jinja2", "version": "3.1.6", "vulns": []}]


def _check(tmp_path: Path, report: list[dict], **env) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    for linter in ("bandit", "lint-imports", "mypy", "ruff"):  # each finds nothing
        (bin_dir / linter).write_text("#!/bin/sh\nexit 0\n")
        (bin_dir / linter).chmod(0o755)
    (bin_dir / "pip-audit").write_text(  # writes the report where --output says, then exits as pip-audit does
        "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --output ] && out=$2; shift; done\n"
        f"cat > \"$out\" <<'JSON'\n{json.dumps({'dependencies': report, 'fixes': []})}\nJSON\n"
        f"exit {1 if any(d.get('vulns') for d in report) else 0}\n")
    (bin_dir / "pip-audit").chmod(0o755)
    return subprocess.run([str(PROJECT_ROOT / "bin" / "check")], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": str(bin_dir / "python"), **env})


def test_a_known_vulnerability_fails_naming_the_fixed_release(tmp_path):
    result = _check(tmp_path, VULNERABLE)
    assert result.returncode == 1
    assert "VULNERABLE: jinja2 3.1.2: GHSA-h5c8-rqwp-cp95 (fixed in 3.1.3)" in result.stderr


def test_no_vulnerability_data_is_skipped_saying_so(tmp_path):
    result = _check(tmp_path, UNREACHABLE)
    assert result.returncode == 0
    assert "SKIPPED: pip-audit could not audit any of the 2 locked dependencies" in result.stderr


@pytest.mark.parametrize("report", [UNREACHABLE, PARTLY])
def test_with_audit_required_what_cannot_be_audited_fails(tmp_path, report):
    result = _check(tmp_path, report, AUDIT_REQUIRED="1")
    assert result.returncode == 1 and "FAIL:" in result.stderr


def test_a_clean_audit_passes_listing_what_was_not_audited(tmp_path):
    result = _check(tmp_path, PARTLY)
    assert result.returncode == 0
    assert "not audited: flask 1.0" in result.stderr and "1 of 2 locked dependencies audited" in result.stderr
