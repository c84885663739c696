"""The mini-program privacy guide and ``requiredPrivateInfos``, generated (issue 26 item 4).

WeChat blocks every privacy interface of a mini-program (location, address, phone, photos,
camera ...) until the user agrees to the privacy guide the operator declares, and the app
declares in ``app.json`` which location interfaces it uses (``requiredPrivateInfos``). Both
come from one place: ``policy/mini-program.yaml`` names the interfaces the mini-program
calls and every category it collects; the catalogue gives each category's description and
the purposes it serves; the policy version in force versions the guide. So the guide, the
policy and the catalogue cannot disagree, and a route that starts collecting a category the
declaration lacks fails ``tests/services/consent/test_privacy_guide.py``.
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
from services.consent.policies.schemas import PolicyVersionView

__all__ = [
    "DECLARATION",
    "Declaration",
    "GuideItem",
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
    policy_version: str
    policy_effective_date: str
    items: list[GuideItem]
    required_private_infos: list[str] = Field(
        alias="requiredPrivateInfos", description="app.json's requiredPrivateInfos"
    )

    model_config = ConfigDict(populate_by_name=True)


def _purposes(catalogue: Catalogue, category: str) -> list[GuidePurpose]:
    ids = {
        purpose
        for resource in catalogue.resources.values()
        for field in resource.fields.values()
        if field.category == category
        for purpose in field.purposes
    }
    found = [catalogue.purpose(purpose_id) for purpose_id in sorted(ids)]
    return [
        GuidePurpose(id=p.id, kind=p.kind, description=" ".join(p.description.split()))
        for p in found
        if p.kind in GUIDE_KINDS
    ]


def build_guide(
    catalogue: Catalogue, policy: PolicyVersionView, declaration: Declaration | None = None
) -> PrivacyGuide:
    """The guide of the policy version ``policy``: one item per declared category."""
    declared = declaration or load_declaration()
    categories = {category.id: category for category in catalogue.data_categories}
    items = []
    for category_id in declared.collects:
        category = categories[category_id]
        items.append(
            GuideItem(
                category=category_id,
                description=" ".join(category.description.split()),
                sensitive=category.sensitive,
                interfaces=[i.api for i in declared.interfaces if i.category == category_id],
                purposes=_purposes(catalogue, category_id),
            )
        )
    return PrivacyGuide(
        platform=declared.platform,
        policy_version=policy.version,
        policy_effective_date=policy.effective_date.isoformat(),
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
        f"{escape(guide.policy_version)}, in effect since "
        f"{escape(guide.policy_effective_date)}: what the mini-program collects, through "
        "which interface, and why.</p>\n"
        "<table><thead><tr><th>information</th><th>interface</th><th>purposes</th></tr>"
        f"</thead><tbody>\n{rows}</tbody></table>\n</body></html>\n"
    )
