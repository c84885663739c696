"""The policy's public HTML page (OB-5-1): version, effective date, a prominent notice for
a major version (OB-5-3), the text, and links to every archived version (OB-5-4).

The Markdown is rendered minimally and safely (:func:`kit.markdown.render_markdown`: only
headings, paragraphs and lists, every piece of text escaped), so the text cannot inject
markup. The page needs no script; the router sends it with a Content-Security-Policy that
allows none.
"""

from __future__ import annotations

from html import escape
from typing import Final
from urllib.parse import quote

from kit.markdown import render_markdown
from services.consent.policies.schemas import (
    MAJOR_CHANGE_DESCRIPTIONS,
    PolicyVersionSummary,
    PolicyVersionView,
)

#: Sent with the page: no scripts, no external resources, no framing.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


_STYLE: Final = """
body { font-family: system-ui, sans-serif; max-width: 50rem; margin: 2rem auto;
       padding: 0 1rem; line-height: 1.55; color: #1b1b1b; }
.meta { color: #555; }
.notice { border: 3px solid #b3261e; background: #fdecea; padding: 1rem 1.25rem;
          margin: 1.5rem 0; border-radius: 6px; }
.notice h2 { color: #b3261e; margin-top: 0; }
.info { border: 1px solid #8a8a8a; background: #f3f3f3; padding: 0.75rem 1rem;
        margin: 1rem 0; border-radius: 6px; }
footer { border-top: 1px solid #ccc; margin-top: 2rem; font-size: 0.95rem; }
code { word-break: break-all; }
"""


def _version_link(version: str) -> str:
    return f"policy.html?version={quote(version, safe='')}"


def _major_notice(shown: PolicyVersionView) -> str:
    kinds = "".join(
        f"<li>{escape(MAJOR_CHANGE_DESCRIPTIONS[kind])}</li>" for kind in shown.major_change_kinds
    )
    reduces = (
        "<p><strong>This change affects your rights.</strong> It applies to you only once "
        "you agree to it.</p>"
        if shown.reduces_rights
        else ""
    )
    return (
        '<section class="notice" role="alert" aria-labelledby="major-notice">'
        '<h2 id="major-notice">Important: major changes to this policy</h2>'
        f"<p>Version {escape(shown.version)} makes major changes:</p><ul>{kinds}</ul>"
        f"{reduces}"
        f"<h3>What changed</h3>{render_markdown(shown.summary_of_changes)}"
        "<p><strong>We will ask you to read and agree to this version again.</strong></p>"
        "</section>"
    )


def _minor_changes(shown: PolicyVersionView) -> str:
    return (
        '<section class="info" aria-labelledby="changes"><h2 id="changes">What changed</h2>'
        f"{render_markdown(shown.summary_of_changes)}</section>"
    )


def _status_banner(shown: PolicyVersionView, archive: list[PolicyVersionSummary]) -> str:
    current = next((v for v in archive if v.status == "current"), None)
    if shown.status == "superseded":
        now = (
            f' The current version is <a href="{_version_link(current.version)}">'
            f"{escape(current.version)}</a>."
            if current
            else ""
        )
        return (
            '<p class="info" role="note">This is an archived version, kept for your review.'
            f"{now}</p>"
        )
    if shown.status == "upcoming":
        return (
            '<p class="info" role="note">This version takes effect on '
            f'<time datetime="{shown.effective_date.isoformat()}">'
            f"{shown.effective_date.isoformat()}</time>.</p>"
        )
    upcoming = [v for v in archive if v.status == "upcoming"]
    if not upcoming:
        return ""
    nearest = upcoming[-1]  # the archive is newest first
    kind = "with major changes " if any(v.major for v in upcoming) else ""
    return (
        f'<p class="{"notice" if kind else "info"}" role="note">A new version, '
        f'<a href="{_version_link(nearest.version)}">{escape(nearest.version)}</a>, '
        f"{kind}takes effect on "
        f'<time datetime="{nearest.effective_date.isoformat()}">'
        f"{nearest.effective_date.isoformat()}</time>.</p>"
    )


def _archive(archive: list[PolicyVersionSummary], shown: str) -> str:
    rows = []
    for version in archive:
        label = escape(version.version)
        link = (
            label
            if version.version == shown
            else (f'<a href="{_version_link(version.version)}">{label}</a>')
        )
        major = ", major change" if version.major else ""
        rows.append(
            f"<li>{link}: effective {version.effective_date.isoformat()} "
            f"({escape(version.status)}{major})</li>"
        )
    return "<ul>" + "".join(rows) + "</ul>"


def render_policy_page(shown: PolicyVersionView, *, archive: list[PolicyVersionSummary]) -> str:
    """The whole page for ``shown``; ``archive`` is every version, newest first."""
    version = escape(shown.version)
    effective = shown.effective_date.isoformat()
    changes = _major_notice(shown) if shown.major else _minor_changes(shown)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Privacy policy, version {version}</title>"
        f"<style>{_STYLE}</style></head><body>\n"
        "<header><h1>Privacy policy</h1>"
        f'<p class="meta">Version <strong class="version">{version}</strong>, effective '
        f'<time class="effective-date" datetime="{effective}">{effective}</time></p></header>\n'
        f"{_status_banner(shown, archive)}\n{changes}\n"
        f'<main class="policy-text">\n{render_markdown(shown.text)}\n</main>\n'
        "<footer><h2>All versions of this policy</h2>"
        f"{_archive(archive, shown.version)}"
        f"<p>SHA-256 of this text: <code>{escape(shown.text_sha256)}</code></p>"
        "</footer>\n</body></html>\n"
    )
