"""The documentation's links resolve: every relative link in README.md, docs/ and bench/ names a
file of the repository, and every #anchor a heading of its target (as GitHub makes anchors), and
every repository path written in backticks in the README and docs/ exists."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("bench/**/*.md")])
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]#*$|^#{1,6}[ \t]+(.+)$", re.M)
PATH_IN_CODE = re.compile(r"`((?:aggregator|tests|bench|bin|docs|migrations|templates)/[^`\s]*)`")


def prose(page: Path) -> str:
    """The page without its fenced code blocks (a `# comment` there is no heading)."""
    return FENCE.sub("", page.read_text())


def anchors(page: Path) -> set[str]:
    """GitHub's anchors: lower case, punctuation dropped, spaces as hyphens; repeats get -1, -2."""
    seen: dict[str, int] = {}
    found = set()
    for match in HEADING.finditer(prose(page)):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", match.group(1) or match.group(2))
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def test_the_pages_are_found():
    names = {str(page.relative_to(ROOT)) for page in PAGES}
    assert {"README.md", "docs/architecture.md", "docs/api.md", "docs/money.md", "bench/README.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in LINK.findall(prose(page)):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no such heading")
    assert not broken, broken


@pytest.mark.parametrize("page", [p for p in PAGES if not p.is_relative_to(ROOT / "bench" / "results")],
                         ids=lambda page: str(page.relative_to(ROOT)))
def test_every_repository_path_named_in_backticks_exists(page):
    """`aggregator/money.py`, `tests/unit/test_money.py`, `bench/close.py` ... (the dated notebooks in
    bench/results/ keep the paths of their day)."""
    missing = []
    for path in PATH_IN_CODE.findall(page.read_text()):
        path = path.rstrip(".,;:")
        if re.search(r"[<>*{}…]|\.\.\.", path):  # a pattern: `templates/emails/<kind>.txt`
            continue
        module = re.sub(r"\.\w+$", ".py", path)  # `aggregator/csv_cells.writer`: a name in a module
        if not (ROOT / path).exists() and not (ROOT / module).exists():
            missing.append(path)
    assert not missing, missing
