"""The docs stay honest: every relative link in README.md and docs/*.md leads to a file (and
heading) that exists, and docs/layout.md lists exactly the files under jobs/, plugins/ and dags/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LAYOUT = ROOT / "docs" / "layout.md"
# Inline links; fenced code blocks are dropped first (a `[x](y)` in a shell example is no link).
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text()))


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file.relative_to(root)}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(root)}")
    return broken


def test_slugs_follow_github() -> None:
    assert (
        slug("The flow of one run (write-audit-publish)")
        == "the-flow-of-one-run-write-audit-publish"
    )
    assert (
        slug("`jobs/lakescore/run/`: the stages of a run") == "jobslakescorerun-the-stages-of-a-run"
    )
    assert slug("Champion/challenger (shadow) scoring") == "championchallenger-shadow-scoring"


def test_the_link_checker_finds_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Top\n\n[ok](#top) [gone](b.md) [no anchor](#nowhere)\n")
    broken = broken_links(tmp_path / "a.md", root=tmp_path)
    assert [b.split(":")[0] for b in broken] == ["b.md", "#nowhere"]


def test_readme_links_every_docs_page() -> None:
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in links(ROOT / "README.md")}
    missing = [p.name for p in PAGES[1:] if p.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    assert not broken_links(page)


def layout_listing() -> set[str]:
    """The files docs/layout.md lists: each table row's first cell names a file relative to the
    folder in the nearest heading above it that names one (`` `jobs/lakescore/run/` ``)."""
    listed: set[str] = set()
    folder = None
    for line in FENCE.sub("", LAYOUT.read_text()).splitlines():
        if line.startswith("#"):
            named = re.search(r"`([\w./-]+/)`", line)
            folder = named.group(1) if named else None
        elif folder and (cell := re.match(r"^\|\s*`([^`]+)`\s*\|", line)):
            listed.add(folder + cell.group(1))
    return listed


def files_on_disk() -> set[str]:
    """Every source file under jobs/, plugins/ and dags/ (package ``__init__.py`` files are the
    folders' headings, build output is not source)."""
    found = set()
    for top in ("jobs", "plugins", "dags"):
        for path in (ROOT / top).rglob("*"):
            rel = path.relative_to(ROOT)
            if (
                path.is_file()
                and path.name != "__init__.py"
                and "__pycache__" not in rel.parts
                and not any(part.endswith(".egg-info") for part in rel.parts)
                and path.suffix not in (".pyc", ".jsa")
            ):
                found.add(rel.as_posix())
    return found


def test_layout_page_lists_exactly_the_files_on_disk() -> None:
    listed, on_disk = layout_listing(), files_on_disk()
    unlisted, gone = sorted(on_disk - listed), sorted(listed - on_disk)
    assert not unlisted, f"add a row to docs/layout.md for: {unlisted}"
    assert not gone, f"gone from disk, still in docs/layout.md: {gone}"


def test_layout_page_has_a_heading_for_every_package() -> None:
    packages = {
        p.parent.relative_to(ROOT).as_posix() + "/"
        for top in ("jobs", "plugins")
        for p in (ROOT / top).rglob("__init__.py")
    }
    headings = set(re.findall(r"^#+ .*?`([\w./-]+/)`", LAYOUT.read_text(), re.MULTILINE))
    assert packages <= headings, f"packages without a section: {sorted(packages - headings)}"
