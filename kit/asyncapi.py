"""``python -m kit.asyncapi`` (``make asyncapi``): the AsyncAPI 3.0 document of every
event the suite publishes, generated from the contracts (:mod:`kit.contracts`) into
``asyncapi.yaml``.

Each topic is a channel (``orders.events``, ``consent.state``, the per-recipient egress topics;
a deployment's ``*_KAFKA_TOPIC_PREFIX`` goes in front); each event type a message whose
payload is the CloudEvents 1.0 envelope of :class:`kit.events.Event` with its ``type``
and ``source`` fixed and its ``data`` the contract's model; the Kafka key (the event's
subject) and the one header (``content-type``) are in the message's Kafka binding and
headers; each sending app has one ``send`` operation per channel.
``tests/kit/test_asyncapi.py`` checks the committed file is this output and validates it
with the AsyncAPI parser (``@asyncapi/parser`` from npm).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from typing import Any, Final

import yaml
from pydantic.json_schema import models_json_schema

from kit.contracts import REGISTRY, Contract, EventData
from kit.events import CLOUDEVENTS_CONTENT_TYPE, Event
from kit.settings import REPO_ROOT

__all__ = ["DOCUMENT_PATH", "asyncapi_document", "asyncapi_yaml"]

DOCUMENT_PATH: Final = REPO_ROOT / "asyncapi.yaml"
_SCHEMAS: Final = "#/components/schemas/"
_KAFKA_BINDING_VERSION: Final = "0.5.0"


def _channel_id(topic: str) -> str:
    words = topic.replace("{", "").replace("}", "").replace("_", ".").split(".")
    return words[0] + "".join(word.capitalize() for word in words[1:])


def _message_id(contract: Contract) -> str:
    return f"{contract.name}.v{contract.version}"


def _schemas() -> dict[str, Any]:
    models: list[type[EventData]] = sorted(
        {contract.data for contract in REGISTRY.values()}, key=lambda m: m.__name__
    )
    _, found = models_json_schema(
        [(model, "serialization") for model in models], ref_template=_SCHEMAS + "{model}"
    )
    schemas: dict[str, Any] = dict(found.get("$defs", {}))
    envelope = Event.model_json_schema(mode="serialization")
    envelope.pop("title", None)
    envelope["title"] = "CloudEvent"
    envelope["description"] = (
        "A CloudEvents 1.0 event in structured mode: `subject` is the pseudonymous id the "
        "event is about, `purpose` the processing purpose it served, `datacategories` the "
        "data categories it touched (space-separated); `data` never holds personal data."
    )
    schemas["CloudEvent"] = envelope
    return dict(sorted(schemas.items()))


def _message(contract: Contract) -> dict[str, Any]:
    return {
        "name": contract.event_type,
        "title": contract.name,
        "summary": contract.summary,
        "contentType": "application/cloudevents+json",
        "headers": {
            "type": "object",
            "required": ["content-type"],
            "properties": {
                "content-type": {"type": "string", "const": CLOUDEVENTS_CONTENT_TYPE.decode()}
            },
        },
        "payload": {
            "allOf": [
                {"$ref": _SCHEMAS + "CloudEvent"},
                {
                    "type": "object",
                    "required": ["type", "source", "data"],
                    "properties": {
                        "type": {"const": contract.event_type},
                        "source": {"const": f"/{contract.sender}"},
                        "data": {"$ref": _SCHEMAS + contract.data.__name__},
                    },
                },
            ]
        },
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": "the event's subject (a pseudonymous id): one subject's "
                    "events keep their order in one partition",
                },
                "bindingVersion": _KAFKA_BINDING_VERSION,
            }
        },
        "x-sender": contract.sender,
        "x-version": contract.version,
    }


def asyncapi_document() -> dict[str, Any]:
    by_topic: dict[str, list[Contract]] = defaultdict(list)
    for contract in REGISTRY.values():
        by_topic[contract.topic].append(contract)
    messages = {_message_id(c): _message(c) for c in REGISTRY.values()}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic, contracts in sorted(by_topic.items()):
        channel_id = _channel_id(topic)
        channel: dict[str, Any] = {
            "address": topic,
            "description": f"events of {contracts[0].sender}"
            + (" (compacted: the newest per subject counts)" if topic == "consent.state" else ""),
            "messages": {
                _message_id(c): {"$ref": f"#/components/messages/{_message_id(c)}"}
                for c in contracts
            },
        }
        if "{recipient_id}" in topic:
            channel["description"] = "one topic per overseas recipient receiving by Kafka"
            channel["parameters"] = {
                "recipient_id": {"description": "the recipient's id (transfer's registry)"}
            }
        channels[channel_id] = channel
        for sender in sorted({c.sender for c in contracts}):
            operations[f"{sender}Sends{channel_id[0].upper()}{channel_id[1:]}"] = {
                "action": "send",
                "summary": f"{sender} publishes to {topic} (transactional outbox)",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": [
                    {"$ref": f"#/channels/{channel_id}/messages/{_message_id(c)}"}
                    for c in contracts
                    if c.sender == sender
                ],
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Signature Workshop privacy backend: events",
            "version": "1.0.0",
            "description": (
                "Every event the apps publish to Kafka, generated from kit/contracts.py "
                "(`make asyncapi`). Records are CloudEvents 1.0 in structured mode: the "
                "value is the whole event as JSON, the key the event's subject, the one "
                "header `content-type`. Topic names take the deployment's "
                "`*_KAFKA_TOPIC_PREFIX` in front."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "the broker of `make run`",
            }
        },
        "channels": channels,
        "operations": dict(sorted(operations.items())),
        "components": {"messages": messages, "schemas": _schemas()},
    }


def asyncapi_yaml() -> str:
    header = "# Generated by `make asyncapi` (python -m kit.asyncapi) from kit/contracts.py.\n"
    return header + yaml.safe_dump(
        asyncapi_document(), sort_keys=False, allow_unicode=True, width=100
    )


if __name__ == "__main__":
    sys.stdout.write(asyncapi_yaml())
