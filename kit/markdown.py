"""Policy texts' Markdown as HTML, minimally and safely: every piece of text goes through
:func:`html.escape`, and only the tags written here (headings, paragraphs, lists) are ever
produced, so a text cannot inject markup. The consent service's policy page and the privacy
center's policy pages both show the policy through it.
"""

from __future__ import annotations

import re
from html import escape

__all__ = ["render_markdown"]

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\d{1,3}[.)]\s+(.*)$")


def render_markdown(text: str, *, top_heading: int = 2) -> str:
    """Headings, paragraphs and lists from Markdown; everything else stays literal text.
    A level-1 heading becomes ``<h{top_heading}>`` (the page's own title is above it)."""
    html: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    list_tag = ""

    def flush_paragraph() -> None:
        if paragraph:
            html.append("<p>" + escape(" ".join(paragraph)) + "</p>")
            paragraph.clear()

    def flush_list() -> None:
        nonlocal list_tag
        if items:
            body = "".join(f"<li>{escape(item)}</li>" for item in items)
            html.append(f"<{list_tag}>{body}</{list_tag}>")
            items.clear()
        list_tag = ""

    for line in text.split("\n"):
        stripped = line.strip()
        heading = _HEADING.match(stripped)
        bullet = _BULLET.match(stripped)
        numbered = _NUMBERED.match(stripped)
        if not stripped:
            flush_paragraph()
            flush_list()
        elif heading:
            flush_paragraph()
            flush_list()
            level = min(len(heading.group(1)) + top_heading - 1, 6)
            html.append(f"<h{level}>{escape(heading.group(2))}</h{level}>")
        elif bullet or numbered:
            flush_paragraph()
            tag = "ul" if bullet else "ol"
            if list_tag != tag:
                flush_list()
                list_tag = tag
            match = bullet or numbered
            assert match is not None
            items.append(match.group(1))
        elif items and line[:1].isspace():
            items[-1] = f"{items[-1]} {stripped}"  # a list item's continuation line
        else:
            flush_list()
            paragraph.append(stripped)
    flush_paragraph()
    flush_list()
    return "\n".join(html)
