"""Event contracts (issue 18 item 4): every event type has a registered model of its
``data``, the committed AsyncAPI 3.0 document is the one the contracts generate, and the
AsyncAPI Initiative's parser (``@asyncapi/parser`` from npm) finds it valid."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from kit.asyncapi import DOCUMENT_PATH, asyncapi_document, asyncapi_yaml
from kit.contracts import REGISTRY, OrderPlaced, OrderStatusChanged, UnknownEventType, data_of
from kit.events import new_event
from kit.settings import REPO_ROOT

#: The parser's version CI installs (.ci/run) and this test installs when it is missing.
PARSER = "@asyncapi/parser@3.6.6"
NODE_PREFIX = REPO_ROOT / ".run" / "node"
_TYPE_LITERAL = re.compile(r"\"(com\.signature\.[a-z_.]+\.v[0-9]+)\"")


def test_the_committed_document_is_the_generated_one() -> None:
    assert DOCUMENT_PATH.read_text(encoding="utf-8") == asyncapi_yaml(), "run `make asyncapi`"


def test_every_event_type_written_in_the_code_has_a_contract() -> None:
    written: set[str] = set()
    for package in ("kit", "gateway", "services"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            written.update(_TYPE_LITERAL.findall(path.read_text(encoding="utf-8")))
    assert len(written) >= 20
    assert sorted(written - set(REGISTRY)) == []


def test_no_sender_builds_its_data_as_a_dict() -> None:
    """Every event is built from its contract's model: no dict literal as ``data``."""
    untyped: list[str] = []
    for package in ("kit", "gateway", "services"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                keywords = {keyword.arg: keyword.value for keyword in node.keywords}
                if {"type", "subject", "purpose"} <= set(keywords) and isinstance(
                    keywords.get("data"), ast.Dict | ast.DictComp
                ):
                    untyped.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert untyped == []


def test_each_topic_lists_its_events_with_key_headers_and_sender() -> None:
    document = asyncapi_document()
    placed = document["components"]["messages"]["orders.order.placed.v1"]
    assert placed["x-sender"] == "orders"
    assert placed["bindings"]["kafka"]["key"]["type"] == "string"
    assert "content-type" in placed["headers"]["properties"]
    envelope, fixed = placed["payload"]["allOf"]
    assert envelope == {"$ref": "#/components/schemas/CloudEvent"}
    assert fixed["properties"]["data"] == {"$ref": "#/components/schemas/OrderPlaced"}
    schema = document["components"]["schemas"]["OrderPlaced"]
    assert set(schema["required"]) >= {"order_id", "goods_ids", "line_count"}
    assert document["channels"]["consentState"]["address"] == "consent.state"
    assert "orders.order.placed.v1" in document["channels"]["ordersEvents"]["messages"]


def test_an_event_carries_its_contracts_model_and_nothing_else() -> None:
    data = OrderStatusChanged(order_id="ord_1", status="paid", by="ptn_standin")
    event = new_event(
        source="/orders",
        type="com.signature.orders.order.status_changed.v1",
        subject="acc_abcdefgh",
        purpose="order.fulfilment",
        data=data,
    )
    assert event.data == {"order_id": "ord_1", "status": "paid", "by": "ptn_standin"}
    assert data_of(event.type, event.data) == data
    with pytest.raises(UnknownEventType):  # another type's model
        new_event(
            source="/orders",
            type="com.signature.orders.order.placed.v1",
            subject="acc_abcdefgh",
            purpose="order.fulfilment",
            data=data,
        )
    with pytest.raises(ValidationError):  # a consumer reading data that breaks the contract
        data_of("com.signature.orders.order.placed.v1", {"order_id": "ord_1"})
    assert OrderPlaced.model_config.get("extra") == "forbid"


def _parser_prefix() -> Path:
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        pytest.skip("npm and node are not installed: the AsyncAPI parser comes from npm")
    if not (NODE_PREFIX / "node_modules" / "@asyncapi" / "parser").is_dir():
        NODE_PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund", PARSER],
            check=True,
            capture_output=True,
            timeout=600,
        )
    return NODE_PREFIX


def test_the_asyncapi_parser_finds_the_document_valid() -> None:
    prefix = _parser_prefix()
    script = Path(__file__).with_name("asyncapi_validate.mjs")
    run = subprocess.run(
        [str(shutil.which("node")), str(script), str(prefix), str(DOCUMENT_PATH)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert run.returncode == 0, run.stdout + run.stderr
    summary = lines[-1]
    assert summary["valid"] is True and summary["version"] == "3.0.0"
    assert summary["messages"] == len(REGISTRY)
    assert not [line for line in lines[:-1] if line["severity"] == 0]
