"""The two lists as a page (OB-L-1): every piece of text goes through :func:`html.escape`;
the page needs no script (sent with the policy page's Content-Security-Policy)."""

from __future__ import annotations

from html import escape

from services.consent.lists.schemas import ListVersionSummary, ListVersionView


def _cell(values: list[str]) -> str:
    return "<br>".join(escape(value) for value in values)


def lists_page(view: ListVersionView, versions: list[ListVersionSummary]) -> str:
    collected = "".join(
        "<tr>"
        f"<td>{escape(item.category)}{' (sensitive)' if item.sensitive else ''}"
        f"<br><small>{escape(item.description)}</small></td>"
        f"<td>{_cell(item.purposes)}</td><td>{_cell(item.method)}</td>"
        f"<td>{_cell(item.functions)}</td>"
        f"<td>{_cell([f'{r.id}: {r.duration}, then {r.then}' for r in item.retention])}</td>"
        "</tr>"
        for item in view.collected
    )
    shared = (
        "".join(
            "<tr>"
            f"<td>{escape(item.recipient)}</td><td>{_cell(item.purposes)}</td>"
            f"<td>{escape(item.method)}</td><td>{_cell(item.categories)}</td>"
            f"<td>{escape(item.contact)}</td>"
            "</tr>"
            for item in view.shared
        )
        or '<tr><td colspan="5">No third party receives personal information.</td></tr>'
    )
    archive = "".join(
        f"<li>version {v.number} (policy {escape(v.policy_version or '-')}, "
        f"{escape(v.made_at.date().isoformat())})</li>"
        for v in versions
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Personal information we collect and share</title></head><body>"
        f"<h1>Personal information we collect and share</h1>"
        f"<p>Lists version {view.number}, for privacy policy version "
        f"{escape(view.policy_version or '-')}, made {escape(view.made_at.isoformat())}.</p>"
        "<h2>Personal information collected</h2><table>"
        "<tr><th>Category</th><th>Purposes</th><th>Method</th><th>Function</th>"
        "<th>Retention</th></tr>"
        f"{collected}</table>"
        "<h2>Third parties we share it with</h2><table>"
        "<tr><th>Recipient</th><th>Purposes</th><th>Method</th><th>Categories</th>"
        "<th>Contact</th></tr>"
        f"{shared}</table>"
        f"<h2>Earlier versions</h2><ul>{archive}</ul></body></html>"
    )
