"""README.md is a short front page and every relative link of it and of docs/*.md leads to a file."""

from __future__ import annotations

import re

import pytest

from .conftest import REPO

README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
# [text](target) and ![alt](target), target up to the first space (a title may follow it)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)


def _links(text: str) -> list[str]:
    text = FENCE.sub("", text)               # a link in a code block is an example, not a link
    text = re.sub(r"`[^`\n]*`", "", text)    # nor is one in inline code
    return LINK.findall(text)


def _relative(target: str) -> str | None:
    """The file part of a relative link, or None for http(s)/mailto links and pure #anchors."""
    if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
        return None
    return target.split("#", 1)[0].split("?", 1)[0]


def test_readme_is_a_short_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move detail into docs/"
    text = "\n".join(lines)
    for command in ("make train", "make test"):
        assert re.search(rf"^{command}\b", text, re.M), f"the quick start lost `{command}`"


def test_docs_pages_exist_and_are_linked_from_the_readme():
    linked = {(README.parent / t).resolve() for t in filter(None, map(_relative, _links(README.read_text())))}
    for page in PAGES[1:]:
        assert page.resolve() in linked, f"README.md does not link {page.relative_to(REPO)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    targets = [t for t in map(_relative, _links(page.read_text())) if t]
    if page == README:
        assert targets, "no links found in README.md: the link pattern is broken"
    broken = [t for t in targets if not (page.parent / t).exists()]
    assert not broken, f"{page.relative_to(REPO)}: links to missing files {broken}"


def test_link_pattern():
    text = ("[a](docs/a.md) ![b](../results/x.png) [c](https://x.org/y) [d](#anchor) [e](cli.md#data)\n"
            "`[f](not/a/link.md)`\n```\n[g](in/a/block.md)\n```\n")
    assert [t for t in map(_relative, _links(text)) if t] == ["docs/a.md", "../results/x.png", "cli.md"]
