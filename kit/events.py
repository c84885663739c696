"""The event envelope: CloudEvents 1.0 (structured JSON), carrying references, never
personal data (design principle 1).

An :class:`Event` names its ``subject`` by the pseudonymous account id, the ``purpose`` the
processing served and the ``datacategories`` it touched (CloudEvents extension attributes;
extension values must be strings, so categories are space-separated). ``data`` holds ids,
states, counts and times only. :func:`new_event` builds one and refuses, with
:class:`PersonalDataInEvent`, any ``data`` key that the catalogue declares personal and any
string value that looks like a phone number, ID number, email address or bank card.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kit.contracts import EventData, as_data
from kit.errors import DomainError

EVENT_TYPE_PREFIX = "com.signature."
_EVENT_TYPE = re.compile(r"^com\.signature\.[a-z_]+(\.[a-z_]+)+\.v[0-9]+$")
# A pseudonymous id: letters, digits and separators, never an email/phone-shaped value.
_SUBJECT = re.compile(r"^[A-Za-z][A-Za-z0-9_:.\-]{2,127}$")

# Shapes of personal data that must never be written to a Kafka log.
_PERSONAL_SHAPES: dict[str, re.Pattern[str]] = {
    "mobile phone number": re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d{9}(?!\d)"),
    "national ID number": re.compile(r"(?<!\d)\d{17}[\dXx](?![\dA-Za-z])"),
    "email address": re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}"),
    "bank card number": re.compile(r"(?<!\d)\d{16,19}(?!\d)"),
}


def new_event_id() -> str:
    """A random (version 4) UUID in its 36-character form, as ``str(uuid.uuid4())`` gives,
    in a third of its time (the ``UUID`` object is most of its cost: ~2 us an event)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    hexed = raw.hex()
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


class PersonalDataInEvent(DomainError):
    status, code, title = 500, "personal-data-in-event", "Personal data in event"


class Event(BaseModel):
    """A CloudEvents 1.0 event in structured JSON mode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=new_event_id, min_length=1, max_length=64)
    source: str = Field(min_length=1, max_length=200, pattern=r"^/[a-z0-9/_\-]+$")
    type: str = Field(max_length=200)
    subject: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: Literal["application/json"] = "application/json"
    purpose: str = Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_.]*$")
    datacategories: str = Field(default="", max_length=2000)
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _type_is_namespaced(cls, value: str) -> str:
        if not _EVENT_TYPE.match(value):
            raise ValueError(
                "event type must look like com.signature.<service>.<entity>.<action>.v<N>"
            )
        return value

    @field_validator("subject")
    @classmethod
    def _subject_is_pseudonymous(cls, value: str) -> str:
        if not is_pseudonymous(value):
            raise ValueError("subject must be a pseudonymous id, never contact or ID data")
        return value

    @field_validator("time")
    @classmethod
    def _time_is_aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("event time must carry a timezone")
        return value

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(self.datacategories.split())

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json_bytes(cls, raw: bytes) -> Event:
        return cls.model_validate_json(raw)


#: The CloudEvents Kafka protocol binding, structured content mode (section 3.2): the whole
#: event is the record's value; no ``ce_`` headers, which would make readers that detect the
#: mode (the CloudEvents SDK's ``from_kafka``) take the record for binary mode.
CLOUDEVENTS_CONTENT_TYPE: Final = b"application/cloudevents+json; charset=UTF-8"


class KafkaRecord(NamedTuple):
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def kafka_record(key: str, event_json: bytes) -> KafkaRecord:
    """The Kafka record of one event (its structured JSON, :meth:`Event.to_json_bytes`)
    under the partition ``key``: the one home of the binding, for the outbox relay and any
    other producer of events."""
    return KafkaRecord(
        key=key.encode(), value=event_json, headers=[("content-type", CLOUDEVENTS_CONTENT_TYPE)]
    )


# A digest (SHA-256 of a policy text, a content hash): hex only, 32 characters or more. Its
# digits come in runs that can look like a card or phone number, yet it holds nothing of
# anyone, so it is not searched.
_DIGEST = re.compile(r"^[0-9a-f]{32,128}$")


# What every shape needs: an ``@`` (email) or a run of 11 digits (the shortest, a mobile
# number; an ID or card number is longer). A value with neither (most ids, states and
# names) is answered without the four searches, a few microseconds per event.
_DIGIT_RUN = re.compile(r"\d{11}")


def is_pseudonymous(value: str) -> bool:
    """Whether ``value`` may be an event's subject: a pseudonymous id, never contact or ID
    data."""
    return bool(_SUBJECT.match(value)) and personal_shape(value) is None


def personal_shape(value: str) -> str | None:
    """The name of the personal-data shape ``value`` contains, or None."""
    if "@" not in value and not _DIGIT_RUN.search(value):
        return None
    if _DIGEST.match(value):
        return None
    for name, pattern in _PERSONAL_SHAPES.items():
        if pattern.search(value):
            return name
    return None


def find_personal_data(
    data: Any, *, personal_fields: frozenset[str], path: str = "data"
) -> list[str]:
    """Paths in ``data`` that hold personal data, with the reason for each."""
    problems: list[str] = []
    if isinstance(data, Mapping):
        for key, value in data.items():
            child = f"{path}.{key}"
            if str(key) in personal_fields:
                problems.append(f"{child}: '{key}' is a personal field in the catalogue")
            problems.extend(find_personal_data(value, personal_fields=personal_fields, path=child))
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            problems.extend(
                find_personal_data(value, personal_fields=personal_fields, path=f"{path}[{index}]")
            )
    elif isinstance(data, str) and (shape := personal_shape(data)):
        problems.append(f"{path}: value looks like a {shape}")
    return problems


def new_event(
    *,
    source: str,
    type: str,
    subject: str,
    purpose: str,
    data: EventData | Mapping[str, Any] | None = None,
    categories: Iterable[str] = (),
    personal_fields: frozenset[str] = frozenset(),
    event_id: str | None = None,
) -> Event:
    """Build a validated event; raise :class:`PersonalDataInEvent` if ``data`` holds any.
    ``data`` given as its type's contract model (:mod:`kit.contracts`) is checked to be
    that model (:class:`~kit.contracts.UnknownEventType` otherwise)."""
    payload = as_data(type, data) if isinstance(data, EventData) else dict(data or {})
    problems = find_personal_data(payload, personal_fields=personal_fields)
    if problems:
        raise PersonalDataInEvent("events may not carry personal data: " + "; ".join(problems))
    extra = {"id": event_id} if event_id else {}
    return Event(
        source=source,
        type=type,
        subject=subject,
        purpose=purpose,
        datacategories=" ".join(sorted(set(categories))),
        data=payload,
        **extra,
    )
