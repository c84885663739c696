"""The data catalogue: ``policy/catalogue.yaml`` as typed, validated, cross-checked objects.

The catalogue is the single source of privacy truth (design principle 2): which fields are
personal, how sensitive they are (PIPL art. 28), which purposes may see them, masked how
(GB/T 35273 display masking), and how long they are kept. The gateway's field filter, the
services' validation, the event guard and the retention sweeper all read it through this
module; nothing hard-codes a field list twice.

Loading is strict. :func:`load_catalogue` parses the YAML keeping each node's line number,
validates the shape with the pydantic models below (frozen, unknown keys refused), then
checks every cross-reference (category, purpose, masking rule, retention period), refuses
duplicate ids and duplicate YAML keys, and parses every duration. Every problem found is
reported, one per line, as ``<file>:<line>: <path>: <message>`` inside a single
:class:`CatalogueError`.

Command line::

    python -m kit.catalogue check [path]   # validate (default: policy/catalogue.yaml)
    python -m kit.catalogue schema         # print the JSON Schema of the file

``policy/catalogue.schema.json`` is the output of ``schema``; a test keeps them equal.
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import re
import sys
from calendar import monthrange
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from kit.settings import DEFAULT_CATALOGUE

__all__ = [
    "Catalogue",
    "CatalogueError",
    "DataCategory",
    "Duration",
    "FieldPolicy",
    "MaskingRule",
    "Problem",
    "Purpose",
    "PurposeKind",
    "Resource",
    "RetentionPeriod",
    "default_catalogue",
    "json_schema",
    "json_schema_text",
    "load_catalogue",
    "parse_catalogue",
]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

PurposeKind = Literal["basic", "additional", "separate", "legal"]
MaskingStrategy = Literal["none", "redact", "partial", "email"]
RetentionStart = Literal[
    "collected", "order_completed", "account_closed", "purpose_withdrawn", "verification_done"
]
RetentionEnd = Literal["delete", "anonymise"]

_ID_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
_FIELD_PATTERN = r"^[a-z][a-z0-9_]*$"
_RESOURCE_PATTERN = r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$"

Identifier = Annotated[StrictStr, Field(pattern=_ID_PATTERN)]
FieldName = Annotated[StrictStr, Field(pattern=_FIELD_PATTERN)]
ResourceName = Annotated[StrictStr, Field(pattern=_RESOURCE_PATTERN)]
Text = Annotated[StrictStr, Field(min_length=1)]

# One problem location: the keys and list indexes from the top of the file.
Loc = tuple[str | int, ...]


# --------------------------------------------------------------------------------------
# Durations (ISO 8601, the subset retention needs)
# --------------------------------------------------------------------------------------

_DURATION_RE = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?$"
)
# The schema's approximation of the above (it also admits "P" and "PT", which the
# validator refuses).
_DURATION_SCHEMA_PATTERN = r"^P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?$"


@dataclass(frozen=True)
class Duration:
    """An ISO 8601 duration with whole-number parts, such as ``P3Y``, ``P30D`` or ``PT12H``.

    Years and months are calendar units: :meth:`after` adds them to the date (29 February
    plus ``P1Y`` is 28 February), then adds weeks, days and time as exact spans.
    """

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        match = _DURATION_RE.fullmatch(text)
        if match is None or text == "P" or text.endswith("T"):
            raise ValueError(
                f"invalid ISO 8601 duration {text!r} (expected e.g. P3Y, P30D, P0D, PT12H)"
            )
        return cls(**{name: int(part) for name, part in match.groupdict().items() if part})

    @property
    def is_zero(self) -> bool:
        return self == Duration()

    def shortest_span(self) -> timedelta:
        """A span no longer than this duration from any start (a year is at least 365
        days, a month at least 28): for an index range that never misses what expired."""
        days = 365 * self.years + 28 * self.months + 7 * self.weeks + self.days
        return timedelta(days=days, hours=self.hours, minutes=self.minutes, seconds=self.seconds)

    def after(self, start: datetime) -> datetime:
        """The moment this duration after ``start`` (keeps ``start``'s time zone)."""
        month_index = start.month - 1 + self.years * 12 + self.months
        year, month = start.year + month_index // 12, month_index % 12 + 1
        day = min(start.day, monthrange(year, month)[1])
        moved = start.replace(year=year, month=month, day=day)
        return moved + timedelta(
            weeks=self.weeks,
            days=self.days,
            hours=self.hours,
            minutes=self.minutes,
            seconds=self.seconds,
        )

    def __str__(self) -> str:
        date = "".join(
            f"{value}{unit}"
            for value, unit in (
                (self.years, "Y"),
                (self.months, "M"),
                (self.weeks, "W"),
                (self.days, "D"),
            )
            if value
        )
        time = "".join(
            f"{value}{unit}"
            for value, unit in ((self.hours, "H"), (self.minutes, "M"), (self.seconds, "S"))
            if value
        )
        if not date and not time:
            return "P0D"
        return "P" + date + (("T" + time) if time else "")


# --------------------------------------------------------------------------------------
# The models: one per kind of entry in the file
# --------------------------------------------------------------------------------------


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Purpose(_Entry):
    """Why personal information is processed. A request is served under exactly one purpose.

    kind: basic = authorised by agreeing to the policy (the basic functions); additional =
    needs its own consent, refusing or withdrawing it never blocks a basic function;
    separate = needs separate consent (sensitive data, PIPL art. 29; cross-border transfer,
    PIPL art. 39); legal = imposed by law rather than consent (PIPL art. 13 (3)).
    """

    id: Identifier = Field(description="e.g. order.query, location, cross_border.transfer")
    kind: PurposeKind
    description: Text
    policy_section: Text = Field(
        description="The section(s) of the privacy policy that state this purpose, e.g. 2D"
    )
    description_zh: Text | None = Field(
        default=None,
        description="The description in Simplified Chinese, as a person reads it (the "
        "privacy center shows it to a Chinese reader); the English one is the reference",
    )
    entrusted: StrictBool = Field(
        default=False,
        description="Processed by a partner on our behalf (policy 3.3, PIPL art. 21); the "
        "partner may use the data for this purpose only.",
    )


class DataCategory(_Entry):
    """A kind of data, named fideslang-style. Categories under user.* are personal
    information, others (system.*) are not."""

    id: Identifier = Field(description="e.g. user.contact.phone_number")
    name: Text = Field(
        description="A short display name in English, e.g. Phone number (the privacy center "
        "shows it instead of the id)"
    )
    name_zh: Text = Field(description="The short display name in Simplified Chinese, e.g. 手机号码")
    description: Text
    sensitive: StrictBool = Field(description="Sensitive personal information (PIPL art. 28)")

    @property
    def personal(self) -> bool:
        return self.id == "user" or self.id.startswith("user.")


class MaskingRule(_Entry):
    """How a field is shown (GB/T 35273 display masking). Strategies: none = shown as is;
    redact = removed (null); partial = keep the first keep_start and last keep_end
    characters, one mask_char per hidden character; email = partial on the local part,
    domain kept. Characters are Unicode code points, so Chinese names mask correctly."""

    id: Identifier = Field(description="e.g. phone")
    strategy: MaskingStrategy
    keep_start: StrictInt = Field(default=0, ge=0, description="Leading characters kept")
    keep_end: StrictInt = Field(default=0, ge=0, description="Trailing characters kept")
    mask_char: StrictStr = Field(
        default="*", min_length=1, max_length=1, description="Replaces each hidden character"
    )
    description: Text


class RetentionPeriod(_Entry):
    """How long data is kept: the duration from the starts event, then deleted or
    anonymised, and the law or reason that sets the period."""

    id: Identifier = Field(description="e.g. transaction_record")
    duration: StrictStr = Field(
        description="ISO 8601 duration, e.g. P3Y, P30D, P0D (not kept at all)",
        json_schema_extra={"pattern": _DURATION_SCHEMA_PATTERN},
    )
    starts: RetentionStart = Field(description="The event that starts the clock")
    then: RetentionEnd = Field(description="What happens when the period ends")
    legal_basis: Text = Field(description="The law or reason that sets the period")

    @field_validator("duration")
    @classmethod
    def _duration_parses(cls, value: str) -> str:
        Duration.parse(value)
        return value

    @property
    def period(self) -> Duration:
        return Duration.parse(self.duration)

    def expires_at(self, start: datetime) -> datetime:
        """When data whose clock started at ``start`` (the ``starts`` event) must go."""
        return self.period.after(start)


class PaymentWindow(_Entry):
    """How long a placed order waits for its payment before it is cancelled (policy 2C).
    One window is the default; goods may name a shorter one where stock is scarce."""

    id: Identifier = Field(description="e.g. standard, scarce")
    duration: StrictStr = Field(
        description="ISO 8601 duration, e.g. PT24H, PT30M",
        json_schema_extra={"pattern": _DURATION_SCHEMA_PATTERN},
    )
    default: StrictBool = Field(default=False, description="The window of goods naming none")
    description: Text

    @field_validator("duration")
    @classmethod
    def _duration_parses(cls, value: str) -> str:
        if Duration.parse(value).is_zero:
            raise ValueError("a payment window cannot be zero")
        return value

    @property
    def period(self) -> Duration:
        return Duration.parse(self.duration)


class FieldPolicy(_Entry):
    """One personal field of a resource: its data category, the purposes that may see it
    (each with the masking rule it is shown with) and its retention period. A purpose not
    listed may not see the field at all."""

    category: Identifier = Field(description="A data category id")
    purposes: dict[Identifier, Identifier] = Field(
        min_length=1, description="Purpose id -> masking rule id"
    )
    retention: Identifier = Field(description="A retention period id")
    description: StrictStr = ""


class Resource(_Entry):
    """A resource a service serves, named <service>.<resource>, and its personal fields.
    Fields not listed hold no personal information."""

    description: StrictStr = ""
    fields: dict[FieldName, FieldPolicy] = Field(min_length=1)


class Catalogue(_Entry):
    """The data catalogue (policy/catalogue.yaml): what is personal, how sensitive, for
    which purposes, shown how, and kept how long."""

    model_config = ConfigDict(title="Data catalogue")

    version: StrictInt = Field(ge=1)
    purposes: tuple[Purpose, ...] = Field(min_length=1)
    data_categories: tuple[DataCategory, ...] = Field(min_length=1)
    masking_rules: tuple[MaskingRule, ...] = Field(min_length=1)
    retention: tuple[RetentionPeriod, ...] = Field(min_length=1)
    payment_windows: tuple[PaymentWindow, ...] = Field(
        default=(), description="How long placed orders wait for payment; one is the default"
    )
    resources: dict[ResourceName, Resource]

    # -- look-ups -----------------------------------------------------------------------

    @functools.cached_property
    def _purposes(self) -> dict[str, Purpose]:
        return {item.id: item for item in reversed(self.purposes)}

    @functools.cached_property
    def _categories(self) -> dict[str, DataCategory]:
        return {item.id: item for item in reversed(self.data_categories)}

    @functools.cached_property
    def _masking_rules(self) -> dict[str, MaskingRule]:
        return {item.id: item for item in reversed(self.masking_rules)}

    @functools.cached_property
    def _retention(self) -> dict[str, RetentionPeriod]:
        return {item.id: item for item in reversed(self.retention)}

    def purpose(self, purpose_id: str) -> Purpose:
        """The purpose with this id; ``KeyError`` if the catalogue does not know it."""
        try:
            return self._purposes[purpose_id]
        except KeyError:
            raise KeyError(f"unknown purpose {purpose_id!r}") from None

    def has_purpose(self, purpose_id: str) -> bool:
        return purpose_id in self._purposes

    def purposes_of_kind(self, kind: PurposeKind) -> tuple[Purpose, ...]:
        return tuple(item for item in self.purposes if item.kind == kind)

    def additional_purposes(self) -> tuple[Purpose, ...]:
        """The additional functions: each needs its own consent (OB-0-1)."""
        return self.purposes_of_kind("additional")

    def category(self, category_id: str) -> DataCategory:
        try:
            return self._categories[category_id]
        except KeyError:
            raise KeyError(f"unknown data category {category_id!r}") from None

    def masking_rule(self, rule_id: str) -> MaskingRule:
        try:
            return self._masking_rules[rule_id]
        except KeyError:
            raise KeyError(f"unknown masking rule {rule_id!r}") from None

    def payment_window(self, window_id: str | None) -> PaymentWindow:
        """The window with this id, or the default window for ``None``; ``KeyError`` if
        the catalogue has no such window (or no default)."""
        for window in self.payment_windows:
            if window.id == window_id or (window_id is None and window.default):
                return window
        raise KeyError(f"unknown payment window {window_id!r}")

    def retention_period(self, retention_id: str) -> RetentionPeriod:
        try:
            return self._retention[retention_id]
        except KeyError:
            raise KeyError(f"unknown retention period {retention_id!r}") from None

    def fields_for(self, resource: str) -> Mapping[str, FieldPolicy]:
        """The personal fields of ``resource`` (``<service>.<resource>``); ``KeyError`` if
        the catalogue does not know the resource. Fields not listed are not personal."""
        try:
            return self.resources[resource].fields
        except KeyError:
            raise KeyError(f"unknown resource {resource!r}") from None

    def field_policy(self, resource: str, field: str) -> FieldPolicy:
        fields = self.fields_for(resource)
        try:
            return fields[field]
        except KeyError:
            raise KeyError(f"{resource} has no personal field {field!r}") from None

    def masking_for(self, resource: str, field: str, purpose: str) -> MaskingRule | None:
        """How ``purpose`` sees ``field`` of ``resource``; ``None`` means it may not see it.

        Fails closed: a field the catalogue does not list for the resource also gives
        ``None`` (callers that pass non-personal fields through check ``fields_for``
        first). An unknown purpose or resource raises ``KeyError``, so a typo is refused
        loudly instead of quietly hiding or showing data.
        """
        self.purpose(purpose)
        policy = self.fields_for(resource).get(field)
        if policy is None:
            return None
        rule_id = policy.purposes.get(purpose)
        return None if rule_id is None else self.masking_rule(rule_id)

    def visible_fields(self, resource: str, purpose: str) -> dict[str, MaskingRule]:
        """The personal fields of ``resource`` that ``purpose`` may see, with their masks."""
        self.purpose(purpose)
        return {
            name: self.masking_rule(policy.purposes[purpose])
            for name, policy in self.fields_for(resource).items()
            if purpose in policy.purposes
        }

    def is_sensitive(self, resource: str, field: str) -> bool:
        return self.category(self.field_policy(resource, field).category).sensitive

    def personal_field_names(self) -> frozenset[str]:
        """Every field name that holds personal information in any resource: events must
        not carry fields with these names (design principle 1)."""
        return self._personal_field_names

    @functools.cached_property
    def _personal_field_names(self) -> frozenset[str]:
        return frozenset(
            name
            for resource in self.resources.values()
            for name, policy in resource.fields.items()
            if self.category(policy.category).personal
        )

    def retention_for(self, resource: str, field: str) -> RetentionPeriod:
        return self.retention_period(self.field_policy(resource, field).retention)


# --------------------------------------------------------------------------------------
# Problems and the error that carries them
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a catalogue file, located by line and by path."""

    source: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class CatalogueError(ValueError):
    """A catalogue file that cannot be used; ``str()`` lists every problem, one per line."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(sorted(problems, key=lambda item: (item.line, item.path)))
        super().__init__("\n".join(str(item) for item in self.problems))


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def _display_path(loc: Loc) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text or "(top level)"


def _node_key(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else f"<{type(node).__name__}>"


# A problem before it is placed in the file: where (path, and the line when it is not the
# path's own) and what.
_Found = tuple[Loc, str, int | None]


def _index_nodes(
    node: yaml.Node,
    loc: Loc,
    lines: dict[Loc, int],
    duplicates: list[_Found],
    active: set[int],
) -> None:
    """Record the line (1-based) of every mapping key and list item below ``node``."""
    lines.setdefault(loc, node.start_mark.line + 1)
    if id(node) in active:  # a recursive alias: indexed once is enough
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = _node_key(key_node)
            key_line = key_node.start_mark.line + 1
            if key in first_seen:
                message = f"duplicate key '{key}' (first on line {first_seen[key]})"
                duplicates.append(((*loc, key), message, key_line))
                continue
            first_seen[key] = key_line
            lines[(*loc, key)] = key_line
            _index_nodes(value_node, (*loc, key), lines, duplicates, active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*loc, index)] = item.start_mark.line + 1
            _index_nodes(item, (*loc, index), lines, duplicates, active)
    active.discard(id(node))


def _compose(text: str) -> tuple[Any, dict[Loc, int], list[_Found]]:
    """Parse YAML with :class:`yaml.SafeLoader`, keeping the line of every path."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {(): 1}
    duplicates: list[_Found] = []
    if node is not None:
        _index_nodes(node, (), lines, duplicates, set())
    return data, lines, duplicates


def _line_finder(lines: Mapping[Loc, int]) -> Callable[[Loc], int]:
    def line_of(loc: Loc) -> int:
        while loc:
            if loc in lines:
                return lines[loc]
            loc = loc[:-1]
        return lines.get((), 1)

    return line_of


def _validation_problems(error: ValidationError) -> list[_Found]:
    problems: list[_Found] = []
    errors = error.errors(include_url=False)
    failed = {tuple(item["loc"]) for item in errors if item["type"] != "too_short"}
    for item in errors:
        loc: Loc = tuple(item["loc"])
        kind = item["type"]
        if kind == "too_short" and any(other[: len(loc)] == loc for other in failed):
            continue  # a list whose items failed counts as short: the items say why
        message = str(item["msg"]).removeprefix("Value error, ")
        value = item.get("input")
        if loc and loc[-1] == "[key]":
            loc = loc[:-1]
            message = f"invalid name: {message}"
        elif kind == "extra_forbidden" and loc:
            message = f"unknown key '{loc[-1]}'"
            value = None
        elif kind == "missing" and loc:
            message = f"missing required key '{loc[-1]}'"
            loc = loc[:-1]
        if kind != "value_error" and isinstance(value, str | int | float | bool):
            message += f" (got {value!r})"
        problems.append((loc, message, None))
    return problems


def _suggest(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _entries(data: Mapping[str, Any], key: str) -> list[tuple[int, Mapping[str, Any]]]:
    """The mapping items of the list under ``key``, with their indexes; ignores the rest
    (pydantic reports those)."""
    items = data.get(key)
    if not isinstance(items, list):
        return []
    return [(index, item) for index, item in enumerate(items) if isinstance(item, dict)]


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


_LISTS = (
    ("purposes", "purpose"),
    ("data_categories", "data category"),
    ("masking_rules", "masking rule"),
    ("retention", "retention period"),
    ("payment_windows", "payment window"),
)


def _reference_problems(data: Mapping[str, Any], line_of: Callable[[Loc], int]) -> list[_Found]:
    """What pydantic cannot see: duplicate ids, references between entries, consistency.

    Works on the parsed YAML rather than the models, so that these problems are reported
    together with the shape problems, and skips whatever is too malformed to check."""
    problems: list[_Found] = []
    known: dict[str, set[str]] = {}
    for key, noun in _LISTS:
        first: dict[str, int] = {}
        for index, item in _entries(data, key):
            item_id = item.get("id")
            if not isinstance(item_id, str):
                continue
            if item_id in first:
                earlier = line_of((key, first[item_id], "id"))
                message = f"duplicate {noun} id '{item_id}' (first defined on line {earlier})"
                problems.append(((key, index, "id"), message, None))
            else:
                first[item_id] = index
        known[key] = set(first)

    for index, item in _entries(data, "data_categories"):
        item_id = item.get("id")
        personal = isinstance(item_id, str) and (item_id == "user" or item_id.startswith("user."))
        if item.get("sensitive") is True and isinstance(item_id, str) and not personal:
            message = f"'{item_id}' is not a user.* category, so it cannot be sensitive"
            problems.append((("data_categories", index, "sensitive"), message, None))
    for index, item in _entries(data, "masking_rules"):
        strategy = item.get("strategy")
        if strategy in ("none", "redact") and (item.get("keep_start") or item.get("keep_end")):
            message = f"strategy '{strategy}' takes no keep_start/keep_end"
            problems.append((("masking_rules", index, "strategy"), message, None))

    windows = _entries(data, "payment_windows")
    defaults = [index for index, item in windows if item.get("default") is True]
    if windows and len(defaults) != 1:
        where: Loc = (
            ("payment_windows", defaults[1], "default") if defaults else ("payment_windows",)
        )
        problems.append((where, "exactly one payment window must be the default", None))

    def check(loc: Loc, value: Any, key: str, noun: str) -> None:
        if isinstance(value, str) and value not in known[key]:
            message = f"unknown {noun} '{value}'" + _suggest(value, known[key])
            problems.append((loc, message, None))

    for resource_name, resource in _mapping(data.get("resources")).items():
        for field_name, raw_policy in _mapping(_mapping(resource).get("fields")).items():
            at: Loc = ("resources", str(resource_name), "fields", str(field_name))
            policy = _mapping(raw_policy)
            check((*at, "category"), policy.get("category"), "data_categories", "data category")
            for purpose_id, rule_id in _mapping(policy.get("purposes")).items():
                here: Loc = (*at, "purposes", str(purpose_id))
                check(here, purpose_id, "purposes", "purpose")
                check(here, rule_id, "masking_rules", "masking rule")
            check((*at, "retention"), policy.get("retention"), "retention", "retention period")
    return problems


def _source_name(path: Path) -> str:
    """The file as messages name it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def parse_catalogue(text: str, source: str = "<catalogue>") -> Catalogue:
    """Parse and check catalogue YAML; ``source`` names the file in messages.

    Raises :class:`CatalogueError` listing every problem found (YAML syntax errors stop
    the parse, so a file with one reports only that)."""
    try:
        data, lines, duplicates = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        reason = ": ".join(part for part in (exc.context, exc.problem) if part)
        raise CatalogueError([Problem(source, line, "", f"YAML syntax error: {reason}")]) from None
    except yaml.YAMLError as exc:
        raise CatalogueError([Problem(source, 1, "", f"YAML error: {exc}")]) from None

    line_of = _line_finder(lines)
    found: list[_Found] = list(duplicates)
    catalogue: Catalogue | None = None
    if not isinstance(data, dict):
        message = (
            "the catalogue must be a mapping with version, purposes, data_categories, "
            "masking_rules, retention and resources"
        )
        found.append(((), message, None))
    else:
        try:
            catalogue = Catalogue.model_validate(data)
        except ValidationError as exc:
            found.extend(_validation_problems(exc))
        found.extend(_reference_problems(data, line_of))
    if found or catalogue is None:
        raise CatalogueError(
            Problem(source, line if line is not None else line_of(loc), _display_path(loc), text)
            for loc, text, line in found
        )
    return catalogue


def load_catalogue(path: str | Path) -> Catalogue:
    """Load and check a catalogue file; :class:`CatalogueError` lists every problem."""
    path = Path(path)
    source = _source_name(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogueError([Problem(source, 1, "", f"cannot read the file: {exc}")]) from None
    return parse_catalogue(text, source)


@functools.cache
def default_catalogue() -> Catalogue:
    """The shipped catalogue (``policy/catalogue.yaml``), loaded once per process."""
    return load_catalogue(DEFAULT_CATALOGUE)


# --------------------------------------------------------------------------------------
# JSON Schema and command line
# --------------------------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the catalogue file, generated from the models."""
    return {"$schema": JSON_SCHEMA_DIALECT, **Catalogue.model_json_schema()}


def json_schema_text() -> str:
    """:func:`json_schema` as committed in ``policy/catalogue.schema.json``."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kit.catalogue", description="Check the data catalogue or print its schema."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate a catalogue file")
    check.add_argument("path", nargs="?", type=Path, default=DEFAULT_CATALOGUE)
    commands.add_parser("schema", help="print the JSON Schema of the catalogue file")
    args = parser.parse_args(argv)

    if args.command == "schema":
        sys.stdout.write(json_schema_text())
        return 0
    try:
        catalogue = load_catalogue(args.path)
    except CatalogueError as exc:
        print(exc, file=sys.stderr)
        return 1
    fields = sum(len(resource.fields) for resource in catalogue.resources.values())
    print(
        f"{_source_name(args.path)}: ok (version {catalogue.version}: "
        f"{len(catalogue.purposes)} purposes, {len(catalogue.data_categories)} data categories, "
        f"{len(catalogue.masking_rules)} masking rules, {len(catalogue.retention)} retention "
        f"periods, {len(catalogue.resources)} resources with {fields} personal fields)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
