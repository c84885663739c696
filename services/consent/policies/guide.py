"""The mini-program privacy guide and ``requiredPrivateInfos``, generated (issue 26 item 4).

WeChat blocks every privacy interface of a mini-program (location, address, phone, photos,
camera ...) until the user agrees to the privacy guide the operator declares, and the app
declares in ``app.json`` which location interfaces it uses (``requiredPrivateInfos``). Both
come from one place: ``policy/mini-program.yaml`` names the interfaces the mini-program
calls and every category it collects; the current version of the OB-L-1 list of personal
information collected (``services.consent.lists``, generated from the catalogue under the
policy version in effect) gives each category's description, sensitivity and purposes. So
the guide, the policy and the two lists cannot disagree, and a route that starts collecting
a category the declaration lacks fails ``tests/services/consent/test_privacy_guide.py``.
"""

from __future__ import annotations

from functools import cache
from html import escape
from pathlib import Path
from typing import Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from kit.catalogue import Catalogue
from kit.settings import REPO_ROOT
from services.consent.lists.schemas import ListVersionView

__all__ = [
    "DECLARATION",
    "Declaration",
    "GuideItem",
    "GuideMismatch",
    "PrivacyGuide",
    "build_guide",
    "load_declaration",
    "render_guide_page",
]

DECLARATION: Final = REPO_ROOT / "policy" / "mini-program.yaml"
#: The interfaces WeChat wants named in ``app.json``'s ``requiredPrivateInfos``.
REQUIRED_PRIVATE_INFOS: Final = frozenset(
    {
        "getFuzzyLocation",
        "getLocation",
        "onLocationChange",
        "startLocationUpdate",
        "startLocationUpdateBackground",
        "chooseLocation",
        "choosePoi",
        "chooseAddress",
    }
)
GUIDE_KINDS: Final = ("basic", "additional", "separate")  # what users agree or consent to


class Interface(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api: str = Field(pattern=r"^[a-zA-Z]+$")
    info: str
    category: str


class Declaration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    platform: Literal["wechat"]
    interfaces: list[Interface]
    collects: list[str] = Field(min_length=1)


@cache
def load_declaration(path: Path = DECLARATION) -> Declaration:
    return Declaration.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


class GuidePurpose(BaseModel):
    id: str
    kind: str
    description: str


class GuideItem(BaseModel):
    category: str
    description: str
    sensitive: bool
    interfaces: list[str] = Field(description="the platform interfaces that collect it")
    purposes: list[GuidePurpose]


class PrivacyGuide(BaseModel):
    platform: str
    policy_version: str = Field(description="the privacy policy version it belongs to")
    list_version: int = Field(
        description="the version of the OB-L-1 lists (GET /consent/lists) it was made from"
    )
    items: list[GuideItem]
    required_private_infos: list[str] = Field(
        alias="requiredPrivateInfos", description="app.json's requiredPrivateInfos"
    )

    model_config = ConfigDict(populate_by_name=True)


class GuideMismatch(ValueError):
    """The declaration names a category the list of personal information collected lacks."""


def build_guide(
    catalogue: Catalogue, lists: ListVersionView, declaration: Declaration | None = None
) -> PrivacyGuide:
    """The guide of the current version of the OB-L-1 lists (and so of the policy version
    they were made under): one item per declared category, described as the list of
    personal information collected describes it, with the purposes users agree or consent
    to (basic, additional, separate)."""
    declared = declaration or load_declaration()
    collected = {item.category: item for item in lists.collected}
    missing = [category for category in declared.collects if category not in collected]
    if missing:
        raise GuideMismatch(f"not in the list of personal information collected: {missing}")
    items = []
    for category_id in declared.collects:
        listed = collected[category_id]
        purposes = [catalogue.purpose(purpose_id) for purpose_id in listed.purposes]
        items.append(
            GuideItem(
                category=category_id,
                description=listed.description,
                sensitive=listed.sensitive,
                interfaces=[i.api for i in declared.interfaces if i.category == category_id],
                purposes=[
                    GuidePurpose(id=p.id, kind=p.kind, description=" ".join(p.description.split()))
                    for p in purposes
                    if p.kind in GUIDE_KINDS
                ],
            )
        )
    return PrivacyGuide(
        platform=declared.platform,
        policy_version=lists.policy_version or "",
        list_version=lists.number,
        items=items,
        required_private_infos=sorted(
            i.api for i in declared.interfaces if i.api in REQUIRED_PRIVATE_INFOS
        ),
    )


def render_guide_page(guide: PrivacyGuide) -> str:
    """The guide as a page (what the mini-program shows before its first privacy call)."""
    rows = "".join(
        "<tr><td>{}{}</td><td>{}</td><td><ul>{}</ul></td></tr>\n".format(
            escape(item.description),
            " <strong>(sensitive)</strong>" if item.sensitive else "",
            escape(", ".join(item.interfaces)) or "&mdash;",
            "".join(f"<li>{escape(p.description)}</li>" for p in item.purposes),
        )
        for item in guide.items
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Mini-program privacy guide</title></head><body>\n"
        f"<h1>Mini-program privacy guide</h1>\n<p>Under privacy policy version "
        f"{escape(guide.policy_version)} (lists version {guide.list_version}): what the "
        "mini-program collects, through which interface, and why.</p>\n"
        "<table><thead><tr><th>information</th><th>interface</th><th>purposes</th></tr>"
        f"</thead><tbody>\n{rows}</tbody></table>\n</body></html>\n"
    )
