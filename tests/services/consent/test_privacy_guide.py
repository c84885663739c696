"""The mini-program privacy guide declares every category a mini-program collects
(issue 26 item 4): each route of ``policy/routes.yaml`` a user (or anyone) can call to send
data (POST, PUT, PATCH) collects the categories of its resource's fields that its purpose
may have; every one of them must be in ``policy/mini-program.yaml``. (The guide served
through the gateway: ``tests/e2e/test_sign_in.py``.)"""

from __future__ import annotations

import pytest

from gateway.routes import RouteTable, load_route_table
from kit.auth import USER_SCOPES
from kit.catalogue import Catalogue, load_catalogue
from kit.models import utcnow
from kit.settings import DEFAULT_CATALOGUE, REPO_ROOT
from services.consent.lists.schemas import ListVersionView
from services.consent.lists.service import collected_list
from services.consent.policies.guide import (
    Declaration,
    GuideMismatch,
    build_guide,
    load_declaration,
)

WRITES = frozenset({"POST", "PUT", "PATCH"})


def collected_by_user_routes(table: RouteTable, catalogue: Catalogue) -> dict[str, set[str]]:
    """Route -> the categories it collects, for every route a user's client can send to."""
    users = {str(scope) for scope in USER_SCOPES}
    found: dict[str, set[str]] = {}
    for route in table.routes:
        reachable = route.public or bool(route.scopes & users)
        if route.internal or not reachable or route.method not in WRITES or not route.resource:
            continue
        fields = catalogue.resources[route.resource].fields.values()
        found[route.key] = {f.category for f in fields if route.purposes & set(f.purposes)}
    return found


def undeclared(
    table: RouteTable, catalogue: Catalogue, declaration: Declaration
) -> dict[str, list[str]]:
    return {
        route: sorted(categories - set(declaration.collects))
        for route, categories in collected_by_user_routes(table, catalogue).items()
        if categories - set(declaration.collects)
    }


def _suite_policy() -> tuple[RouteTable, Catalogue]:
    catalogue = load_catalogue(DEFAULT_CATALOGUE)
    return load_route_table(REPO_ROOT / "policy" / "routes.yaml", catalogue), catalogue


def test_every_category_a_mini_program_route_collects_is_in_the_guide() -> None:
    table, catalogue = _suite_policy()
    collected = collected_by_user_routes(table, catalogue)
    assert collected["POST /orders/location/nearby"] == {"user.location.precise"}
    assert undeclared(table, catalogue, load_declaration()) == {}


def test_a_route_collecting_an_undeclared_category_is_named() -> None:
    table, catalogue = _suite_policy()
    declared = load_declaration()
    without_location = declared.model_copy(
        update={"collects": [c for c in declared.collects if c != "user.location.precise"]}
    )
    assert undeclared(table, catalogue, without_location) == {
        "POST /orders/location/address-autofill": ["user.location.precise"],
        "POST /orders/location/nearby": ["user.location.precise"],
    }


def _lists(catalogue: Catalogue) -> ListVersionView:
    return ListVersionView(
        number=3,
        policy_version="2026.1",
        made_at=utcnow(),
        digest="d",
        collected=collected_list(catalogue),
        shared=[],
    )


def test_the_guide_says_what_the_list_of_personal_information_collected_says() -> None:
    _, catalogue = _suite_policy()
    declared = load_declaration()
    assert {i.category for i in declared.interfaces} <= set(declared.collects)
    lists = _lists(catalogue)
    guide = build_guide(catalogue, lists)
    assert (guide.policy_version, guide.list_version) == ("2026.1", 3)
    listed = {item.category: item for item in lists.collected}
    assert [item.category for item in guide.items] == declared.collects
    for item in guide.items:
        assert item.description == listed[item.category].description
        assert item.sensitive == listed[item.category].sensitive
        assert {p.id for p in item.purposes} <= set(listed[item.category].purposes)
    assert guide.required_private_infos == ["chooseAddress", "getLocation"]


def test_a_declared_category_the_lists_lack_is_refused() -> None:
    _, catalogue = _suite_policy()
    declared = load_declaration()
    lists = _lists(catalogue)
    thinner = lists.model_copy(
        update={"collected": [i for i in lists.collected if i.category != "user.name"]}
    )
    with pytest.raises(GuideMismatch, match=r"user\.name"):
        build_guide(catalogue, thinner, declared)
