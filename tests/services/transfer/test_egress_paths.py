"""The transfer service is the only way out of the country (OB-4-3): no other outbound path
exists in the suite's code or APIs. Simple and honest, not a proof against a determined
author: it scans the source and every app's OpenAPI for the ways data could leave, and
fails on any it has not been told about, so that a new one is reviewed.

- only ``services/transfer`` names the egress topics (``transfer.egress.<recipient>``);
- no code outside the kit builds a Kafka producer: services publish only through their
  outbox, and every outbox writer carries the catalogue's personal fields, so the event
  guard refuses personal data in any event of any service;
- every HTTP client the suite builds is in :data:`HTTP_CLIENTS`, with where it goes; no
  other network library is imported;
- no API lets a caller name a URL to send data to, except the transfer service's recipient
  registration (``endpoint_url``, checked, https only, behind ``admin:transfers``) and
  orders' payment-provider set-up (``api_url``, https or loopback, behind ``admin:partners``).
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kit.catalogue import load_catalogue
from kit.events import PersonalDataInEvent, new_event
from kit.settings import DEFAULT_CATALOGUE, REPO_ROOT

SOURCE_ROOTS = ("kit", "services", "gateway")
APPS = ["services.identity", "services.orders", "services.consent", "services.transfer", "gateway"]
TRANSFER = Path("services/transfer")

#: Every module that builds an HTTP client, and where that client goes.
HTTP_CLIENTS: dict[str, str] = {
    "kit/auth.py": "identity's JWKS (public keys in; nothing personal out)",
    "kit/service_token.py": "identity's token endpoint (a service client's credentials out, "
    "a token in; nothing personal)",
    "kit/testing.py": "an app in the same process (tests)",
    "gateway/proxy.py": "the suite's own four services (the gateway's upstreams, domestic)",
    "gateway/privacy_web/client.py": "the gateway app itself, in process (ASGI transport): "
    "the privacy center's pages call the gateway's own routes; no network",
    "services/identity/verification/authority.py": "the domestic identity authority",
    "services/identity/mini_program/platform.py": "the mini-program platform's server API "
    "(domestic): a login or phone code and the app's credentials out, the openid, session "
    "key or phone number in",
    "services/identity/sms/sender.py": "the SMS provider (domestic): the mainland mobile "
    "number and the sign-in code out",
    "services/consent/rights/export.py": "the suite's own services (rights exports), and the "
    "processor a user names for a portability copy (OB-L-4): only after re-verification, "
    "only the data that came by consent or contract",
    "kit/rights.py": "the privacy center, domestic (a participant reads its corrections)",
    "services/transfer/transfers/fetcher.py": "the orders service (domestic)",
    "services/transfer/transfers/delivery.py": "overseas recipients: the one path abroad",
    "services/orders/payments/provider.py": "the payment providers staff set up (domestic): "
    "what the catalogue gives order.payment (order number, amount, currency, goods, expiry)",
}
HTTPX_CLIENTS = frozenset({"AsyncClient", "Client", "AsyncHTTPTransport", "HTTPTransport"})
#: Network libraries the suite does not use; importing one needs a review here.
OTHER_NETWORK_MODULES = (
    "aiohttp",
    "requests",
    "urllib.request",
    "http.client",
    "smtplib",
    "ftplib",
    "socket",
    "websockets",
    "paramiko",
)
#: Reviewed uses of those libraries, with why they cannot reach anywhere new.
REVIEWED_NETWORK_IMPORTS = {
    ("gateway/proxy.py", "aiohttp"): "the transport under the gateway's httpx clients: the "
    "same upstreams (the suite's own four services), built by the same factory",
    ("kit/operations.py", "socket"): "the listening socket of an app's own operations port "
    "(readiness, metrics, docs): it accepts connections, it sends nothing anywhere",
}
#: The Kafka producers: the kit's outbox relay, the consumers' dead-letter copies (events
#: already on the suite's own topics) and the factory itself; and the gateway's access
#: events, sent straight to its own topic (issue 14), each built by the gateway's guarded
#: ``EventWriter.processing_event`` and written to its outbox when Kafka does not answer.
KAFKA_PRODUCERS = frozenset(
    {"kit/kafka.py", "kit/outbox.py", "kit/consumer.py", "gateway/access_events.py"}
)
DESTINATION_NAME = re.compile(r"(url|uri|endpoint|webhook|callback|redirect|host)", re.I)
ALLOWED_DESTINATIONS = {
    ("services.transfer", "RecipientCreate", "endpoint_url"),
    ("services.orders", "ProviderCreate", "api_url"),
    # the same two routes in the gateway's own OpenAPI (gateway/openapi.py)
    ("gateway", "TransferRecipientCreate", "endpoint_url"),
    ("gateway", "OrdersProviderCreate", "api_url"),
    # the processor a user names for a portability copy (OB-L-4), at consent and through
    # the gateway
    ("services.consent", "Destination", "url"),
    ("gateway", "ConsentDestination", "url"),
}


def _sources() -> Iterator[tuple[Path, str, ast.Module]]:
    for root in SOURCE_ROOTS:
        for path in sorted((REPO_ROOT / root).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            yield path.relative_to(REPO_ROOT), text, ast.parse(text, filename=str(path))


def _called_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    if isinstance(call.func, ast.Name):
        return call.func.id
    return None


def _calls(tree: ast.Module) -> Iterator[ast.Call]:
    return (node for node in ast.walk(tree) if isinstance(node, ast.Call))


@pytest.mark.obligation("OB-4-3")
def test_only_the_transfer_service_names_the_egress_topics() -> None:
    naming = [path for path, text, _ in _sources() if "transfer.egress" in text]
    assert naming, "the transfer service defines its egress topics"
    # The event contracts (kit/contracts.py) document the egress event and its topic for
    # asyncapi.yaml; nothing there publishes (the next test: only outboxes publish).
    documented = {Path("kit/contracts.py")}
    assert [p for p in naming if not p.is_relative_to(TRANSFER) and p not in documented] == []


@pytest.mark.obligation("OB-4-3")
def test_services_publish_only_through_their_outbox_with_the_event_guard() -> None:
    producers, unguarded = [], []
    for path, _, tree in _sources():
        for call in _calls(tree):
            name = _called_name(call)
            if name in {"AIOKafkaProducer", "new_producer"}:
                producers.append(str(path))
            if name == "EventWriter" and not any(
                keyword.arg == "personal_fields" for keyword in call.keywords
            ):
                unguarded.append(f"{path}:{call.lineno}")
    assert set(producers) <= KAFKA_PRODUCERS, "publish through the outbox instead"
    assert unguarded == [], "every outbox writer must pass the catalogue's personal fields"

    # ... and the guard refuses every personal field of the catalogue by name.
    catalogue = load_catalogue(DEFAULT_CATALOGUE)
    personal = catalogue.personal_field_names()
    for resource in catalogue.resources.values():
        for field in resource.fields:
            if field not in personal:
                continue
            with pytest.raises(PersonalDataInEvent):
                new_event(
                    source="/any",
                    type="com.signature.any.thing.happened.v1",
                    subject="acc_someone",
                    purpose="order.fulfilment",
                    data={field: "x"},
                    personal_fields=personal,
                )


@pytest.mark.obligation("OB-4-3")
def test_every_http_client_is_known_and_no_other_network_library_is_used() -> None:
    builders, imports = set(), []
    for path, _, tree in _sources():
        for call in _calls(tree):
            func = call.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id == "httpx"
                and func.attr in HTTPX_CLIENTS
            ):
                builders.add(str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
                imported = {alias.name for alias in node.names}
                if node.module == "httpx" and imported & HTTPX_CLIENTS:
                    builders.add(str(path))
            for name in names:
                if (str(path), name) in REVIEWED_NETWORK_IMPORTS:
                    continue
                if any(name == m or name.startswith(m + ".") for m in OTHER_NETWORK_MODULES):
                    imports.append(f"{path}: {name}")
    unknown = sorted(builders - set(HTTP_CLIENTS))
    assert unknown == [], (
        "a new HTTP client: could it carry personal data abroad? Review it and add it to "
        "HTTP_CLIENTS with its destination"
    )
    assert imports == []


def _reachable(schema: Any, schemas: dict[str, Any], seen: set[str]) -> Iterator[str]:
    """Names of the component schemas reachable from ``schema``."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                seen.add(name)
                yield name
                yield from _reachable(schemas.get(name, {}), schemas, seen)
        for value in schema.values():
            yield from _reachable(value, schemas, seen)
    elif isinstance(schema, list):
        for item in schema:
            yield from _reachable(item, schemas, seen)


@pytest.mark.parametrize("app_package", APPS)
@pytest.mark.obligation("OB-4-3")
def test_no_api_but_recipient_registration_takes_a_destination(
    app_package: str, tmp_path: Path
) -> None:
    settings = importlib.import_module(f"{app_package}.config").Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'app.db'}"
    )
    spec = importlib.import_module(f"{app_package}.main").create_app(settings).openapi()
    schemas: dict[str, Any] = spec.get("components", {}).get("schemas", {})
    found: set[tuple[str, str, str]] = set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if DESTINATION_NAME.search(parameter["name"]):
                    found.add((app_package, f"{method.upper()} {path}", parameter["name"]))
            body = operation.get("requestBody", {})
            for name in _reachable(body, schemas, set()):
                for prop in schemas.get(name, {}).get("properties", {}):
                    if DESTINATION_NAME.search(prop):
                        found.add((app_package, name, prop))
    assert found <= ALLOWED_DESTINATIONS
