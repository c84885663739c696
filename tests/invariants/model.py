"""The small model the state machine keeps, the story it tells, and the seven invariants as
checks of one answer or of the model against the suite (issue 25).

The model knows only what the machine did in this example: its users (live, deleted, which
policy they agreed to, their consents), their orders, the partners (couriers, customs
brokers, invoicing partners), how many major policy versions it published and, per user,
how many ledger entries each kind of read must have left. It predicts the one right answer
of every request; a check that finds another raises :class:`InvariantBroken` with the story
so far (step, request, answer).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from gateway.routes import Route, RouteTable, load_route_table
from kit.catalogue import Catalogue, default_catalogue
from kit.settings import REPO_ROOT
from tests.e2e.suite import Person

#: Owner reads a service still records itself beside the gateway's entry (README,
#: "Recording each read once"), for which invariant 5 accepts one or two entries per
#: answer, as "METHOD /upstream/path". Empty: identity's account and the cart are recorded
#: once since issue 14 item 4 landed, and location is orders' alone. Add a route here only
#: while a fix for it is under way; orders' routes never belong here.
DOUBLE_RECORDED_ROUTES: Final[frozenset[str]] = frozenset()

#: The purposes whose ledger entries the model counts (the reads the machine makes);
#: entries under other purposes (rights exports, transfers, retention) are not predicted.
COUNTED_PURPOSES: Final = frozenset(
    {
        "order.query",
        "order.fulfilment",
        "logistics.delivery",
        "customs.clearance",
        "account",
        "cart",
        "location",
    }
)

PROBLEM_JSON: Final = "application/problem+json"

INVARIANTS: Final = {
    1: "purpose binding: no field the purpose may not see, no consent-gated answer without consent",
    2: "rights stay reachable for a live account",
    3: "renewal: 428 exactly on closed routes for users who have not agreed to the newest "
    "major version",
    4: "deletion: no personal values, tokens refused",
    5: "one ledger entry per answer with personal data",
    6: "idempotency: a replayed POST returns the same answer with no second effect",
    7: "no 5xx; every error is problem+json",
}


class InvariantBroken(AssertionError):
    """An invariant failed; the message is the story that led there."""

    def __init__(self, number: int, detail: str, story: Story) -> None:
        self.number = number
        super().__init__(
            f"invariant {number} ({INVARIANTS[number]}) broken: {detail}\n\n"
            f"The story (most recent last):\n{story.render()}"
        )


# ---------------------------------------------------------------------------- the story


@dataclass
class Story:
    """What happened, step by step: each request and the answer to it."""

    lines: list[str] = field(default_factory=list)
    steps: int = 0
    #: How many lines :meth:`render` shows (the last ones).
    keep: int = 80
    started: float = field(default_factory=time.monotonic)

    def step(self, name: str, **arguments: Any) -> None:
        self.steps += 1
        shown = ", ".join(f"{key}={value}" for key, value in arguments.items())
        at = time.monotonic() - self.started
        self.lines.append(f"step {self.steps} (+{at:.1f} s): {name}({shown})")

    def note(self, text: str) -> None:
        self.lines.append(f"    {text}")

    def exchange(self, who: str, method: str, path: str, body: Any, answer: httpx.Response) -> None:
        sent = f" {_short(body)}" if body is not None else ""
        self.lines.append(f"    {who}: {method} {path}{sent}")
        self.lines.append(f"      -> {answer.status_code} {_short(_body_of(answer))}")

    def render(self) -> str:
        shown = self.lines[-self.keep :]
        skipped = len(self.lines) - len(shown)
        head = [f"    ... {skipped} earlier lines"] if skipped else []
        return "\n".join([*head, *shown])


def _body_of(answer: httpx.Response) -> Any:
    if not answer.content:
        return ""
    try:
        return answer.json()
    except ValueError:
        return answer.text


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------- the model


@dataclass
class User:
    name: str  # u0, u1, ... in the story
    person: Person
    account_id: str
    headers: dict[str, str]
    #: How many major versions this example had published when the user last agreed
    #: (None: never agreed). Agreeing is always to the version in effect.
    agreed_major: int | None = None
    consents: set[str] = field(default_factory=set)
    deleted: bool = False
    #: Real-name verified; a minor is a user under 14 (from the verified ID number), who
    #: grants nothing without a guardian: a verified adult linked as such, who may also
    #: grant and withdraw for them.
    verified: bool = False
    minor: bool = False
    guardian: User | None = None
    #: Ledger entries the user's reads must have left: (resource, purpose) -> count; and
    #: the keys of routes still recorded twice (README), which may have up to twice that.
    entries: Counter[tuple[str, str]] = field(default_factory=Counter)
    tolerant: set[tuple[str, str]] = field(default_factory=set)

    def __str__(self) -> str:
        return self.name


@dataclass
class Partner:
    """A partner of one kind, acting with its client-credentials token: a courier
    (``logistics``), a customs broker (``customs``) or an invoicing partner (``tax``)."""

    name: str  # c0 (couriers), b0 (brokers), t0 (tax) in the story
    client_id: str
    headers: dict[str, str]
    role: str = "logistics"
    revoked: bool = False

    @property
    def scopes(self) -> tuple[str, ...]:
        return (f"partner:{self.role}",)

    def __str__(self) -> str:
        return self.name


#: The partner kinds identity registers, per role, and the purpose each is registered for.
PARTNER_KINDS: Final = {
    "logistics": ("logistics", "logistics.delivery"),
    "customs": ("customs_broker", "customs.clearance"),
    "tax": ("tax", "tax.invoice"),
}


@dataclass
class Order:
    name: str
    order_id: str
    owner: User
    body: dict[str, Any]
    idempotency_key: str
    first_answer: dict[str, Any]
    status: str = "placed"
    courier: Partner | None = None
    #: Cross-border goods: the customs identity was sent, and a customs broker clears it.
    cross_border: bool = False
    broker: Partner | None = None
    #: The retention sweep anonymised it (the clock moved past its periods): it is
    #: nobody's order any more.
    anonymised: bool = False
    #: The street address the order has now (a correction changes it).
    address: str = ""

    def __str__(self) -> str:
        return self.name


@dataclass
class Model:
    policy_version: str
    majors: int = 0
    users: list[User] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    couriers: list[Partner] = field(default_factory=list)
    brokers: list[Partner] = field(default_factory=list)
    tax_partners: list[Partner] = field(default_factory=list)

    def needs_renewal(self, user: User) -> bool:
        return user.agreed_major is None or user.agreed_major < self.majors

    def live(self) -> Iterator[User]:
        return (user for user in self.users if not user.deleted)

    def orders_of(self, user: User) -> list[Order]:
        """The user's orders (the anonymised ones are nobody's)."""
        return [order for order in self.orders if order.owner is user and not order.anonymised]


# ---------------------------------------------------------------------------- the rules of data


class Policy:
    """What the catalogue and the route table say, for checking answers against them."""

    def __init__(self) -> None:
        self.catalogue: Catalogue = default_catalogue()
        self.routes: RouteTable = load_route_table(
            REPO_ROOT / "policy" / "routes.yaml", self.catalogue
        )

    def route(self, method: str, path: str) -> Route | None:
        return self.routes.match(method, path.split("?", 1)[0])

    def purpose(self, route: Route, scopes: Iterable[str] = ()) -> str | None:
        if route.purpose is not None:
            return route.purpose
        for scope in scopes:
            if scope in route.purpose_by_scope:
                return route.purpose_by_scope[scope]
        return None

    def categories_in(self, value: Any, resource: str) -> set[str]:
        """The data categories of the personal fields of ``resource`` with a value in
        ``value`` (objects nested in objects and lists included)."""
        fields = self.catalogue.fields_for(resource)
        found: set[str] = set()
        for key, item in _walk(value):
            if key in fields and item is not None:
                found.add(fields[key].category)
        return found

    def forbidden_in(self, value: Any, resource: str, purpose: str) -> list[str]:
        """The personal fields of ``resource`` in ``value`` that ``purpose`` may not see."""
        fields = self.catalogue.fields_for(resource)
        visible = self.catalogue.visible_fields(resource, purpose)
        return sorted(
            {
                key
                for key, item in _walk(value)
                if key in fields
                and (key not in visible or (visible[key].strategy == "redact" and item is not None))
            }
        )

    def masked_fields(self, resource: str, purpose: str) -> set[str]:
        """The personal fields ``purpose`` sees only masked."""
        return {
            name
            for name, rule in self.catalogue.visible_fields(resource, purpose).items()
            if rule.strategy != "none"
        }


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def raw_values(person: Person) -> Mapping[str, str]:
    """The values a leak check looks for (never shown masked or after deletion)."""
    return {
        "phone": person.phone,
        "name": person.name,
        "address": person.address_detail,
        "ID number": person.id_number,
    }


def is_problem(answer: httpx.Response) -> bool:
    return bool(answer.headers.get("content-type", "").startswith(PROBLEM_JSON))
