"""Minimum necessary, compiled: what each purpose may see of each resource, from the catalogue.

:class:`FieldFilter` is built once from a :class:`~kit.catalogue.Catalogue` (a dict
resource -> purpose -> field -> masking rule) and then applied per response without
touching the catalogue again:

- :meth:`FieldFilter.filter` walks a JSON value (objects nested in objects and lists
  included). In every object, a key that is a personal field of the resource is kept only
  when the purpose may see it, masked as the catalogue says (:func:`kit.masking.mask_value`);
  any other personal field is removed. Keys the catalogue does not list for the resource
  are not personal and pass through (their values are walked, so personal fields nested
  in them are filtered too). It returns the filtered value and the data categories that
  remain in it (a field masked to ``null`` or absent counts for nothing).
- :meth:`FieldFilter.refused_inputs` names, by path and at every depth (as the response
  filter walks), the keys of a request body that are personal fields of the resource the
  purpose may not submit (conservative: a purpose that may not see a field may not send it
  either).

Resource-agnostic: the gateway uses it; a service can use it for its own views.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from kit.catalogue import Catalogue, MaskingRule
from kit.masking import apply_mask, mask_email, mask_partial, mask_value

__all__ = ["FieldFilter", "FilterResult"]


@dataclass(frozen=True)
class FilterResult:
    value: Any
    #: The data categories of the personal fields left in ``value`` (non-null), sorted.
    categories: tuple[str, ...]
    #: How many personal fields were removed, and how many masked (not shown as they are).
    removed: int = 0
    masked: int = 0


#: What the filter does with one personal field for one purpose: removed (``None``), or
#: shown under its rule, counted in its category, a string masked by the function (none:
#: shown as is).
_Shown = tuple[MaskingRule, str, Callable[[str], str | None] | None]
_NOT_PERSONAL: Final = object()
#: JSON's scalar types, exactly: copied as they are (subclasses are looked at closer).
_PLAIN: Final = frozenset({str, int, float, bool, type(None)})


def _spelt(where: Any) -> str:
    """``(((None, "items"), 0), "x")`` as ``items.0.x``."""
    parts: list[str] = []
    while where is not None:
        where, key = where
        parts.append(str(key))
    return ".".join(reversed(parts))


class FieldFilter:
    """Per resource and purpose, the personal fields shown and how; compiled once."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._personal: dict[str, frozenset[str]] = {}
        self._categories: dict[str, dict[str, str]] = {}
        self._rules: dict[str, dict[str, dict[str, MaskingRule]]] = {}
        # resource -> purpose -> personal field -> what to do with it (see _Shown). One
        # dict lookup per key of the response tells all: not personal, removed, or shown.
        self._plans: dict[str, dict[str, dict[str, _Shown | None]]] = {}
        # resource -> purpose -> the personal fields it may not submit (nor see).
        self._forbidden: dict[str, dict[str, frozenset[str]]] = {}
        purposes = [purpose.id for purpose in catalogue.purposes]
        for name, resource in catalogue.resources.items():
            self._personal[name] = frozenset(resource.fields)
            categories = {field: policy.category for field, policy in resource.fields.items()}
            self._categories[name] = categories
            self._rules[name] = {
                purpose: catalogue.visible_fields(name, purpose) for purpose in purposes
            }
            self._forbidden[name] = {
                purpose: frozenset(resource.fields) - frozenset(rules)
                for purpose, rules in self._rules[name].items()
            }
            self._plans[name] = {
                purpose: {
                    field: (
                        (rule, categories[field], _text_masker(rule))
                        if (rule := rules.get(field)) is not None
                        else None
                    )
                    for field in resource.fields
                }
                for purpose, rules in self._rules[name].items()
            }

    def knows(self, resource: str, purpose: str) -> bool:
        return purpose in self._rules.get(resource, {})

    def visible(self, resource: str, purpose: str) -> Mapping[str, MaskingRule]:
        """The personal fields ``purpose`` sees of ``resource``; ``KeyError`` if unknown."""
        try:
            return self._rules[resource][purpose]
        except KeyError:
            raise KeyError(f"unknown resource or purpose: {resource} / {purpose}") from None

    def filter(self, value: Any, *, resource: str, purpose: str) -> FilterResult:
        try:
            plan = self._plans[resource][purpose]
        except KeyError:
            raise KeyError(f"unknown resource or purpose: {resource} / {purpose}") from None
        personal = self._personal[resource]
        found: set[str] = set()
        removed = masked = 0

        # Scalars are copied without a call and without isinstance: the walk recurses only
        # into objects and lists (goal: <= 20 us for a 5-line order, every purpose;
        # bench.gateway). A subclass of dict or list takes the careful path.
        def walk(item: Any) -> Any:
            kind = type(item)
            if kind is dict:
                return walk_object(item)
            if kind is list:
                return walk_list(item)
            if kind in _PLAIN:
                return item
            if isinstance(item, dict):
                return walk_object(item)
            if isinstance(item, list):
                return walk_list(item)
            return item

        def walk_object(node: dict[str, Any]) -> dict[str, Any]:
            nonlocal removed, masked
            if personal.isdisjoint(node):  # most objects (order lines): C-level tests
                if _PLAIN.issuperset(map(type, node.values())):
                    return node.copy()
                return {k: v if type(v) in _PLAIN else walk(v) for k, v in node.items()}
            out: dict[str, Any] = {}
            for key, item in node.items():
                action = plan.get(key, _NOT_PERSONAL)
                if action is _NOT_PERSONAL:
                    out[key] = item if type(item) in _PLAIN else walk(item)
                elif action is None:
                    removed += 1  # not for this purpose: removed, never leaked
                else:
                    rule, category, mask_text = cast(_Shown, action)
                    if mask_text is None:
                        shown = item
                    else:
                        shown = mask_text(item) if type(item) is str else mask_value(item, rule)
                        if shown != item:
                            masked += 1
                    if shown is not None and shown != []:
                        found.add(category)
                    out[key] = shown
            return out

        def walk_list(node: list[Any]) -> list[Any]:
            return [item if type(item) in _PLAIN else walk(item) for item in node]

        filtered = walk(value)
        return FilterResult(filtered, tuple(sorted(found)), removed=removed, masked=masked)

    def refused_inputs(self, body: Any, *, resource: str, purpose: str) -> list[str]:
        """Where ``body`` holds personal fields of ``resource`` that ``purpose`` may not
        submit, at every depth (objects in objects and in lists), as dotted paths
        (``address.customs_id_number``, ``items.0.invoice_tax_id``), sorted. Iterative: a
        deeply nested body costs no recursion."""
        try:
            forbidden = self._forbidden[resource][purpose]
        except KeyError:
            raise KeyError(f"unknown resource or purpose: {resource} / {purpose}") from None
        found: list[str] = []
        # (where it is, the container): where is None at the top, else (parent's where, key);
        # a path is spelt only for what is found. Scalars are never looked at twice.
        pending: list[tuple[Any, Any]] = [(None, body)]
        pop, push = pending.pop, pending.append
        while pending:
            where, node = pop()
            if type(node) is dict or isinstance(node, dict):
                if not forbidden.isdisjoint(node):
                    found.extend(_spelt((where, key)) for key in node if key in forbidden)
                for key, item in node.items():
                    if type(item) not in _PLAIN:
                        push(((where, key), item))
            elif type(node) is list or isinstance(node, list):
                for index, item in enumerate(node):
                    if type(item) not in _PLAIN:
                        push(((where, index), item))
        return sorted(found)

    def categories_of(self, resource: str, fields: Iterable[str]) -> list[str]:
        table = self._categories[resource]
        return sorted({table[field] for field in fields if field in table})


def _text_masker(rule: MaskingRule) -> Callable[[str], str | None] | None:
    """:func:`kit.masking.apply_mask` with the rule read once; ``None`` shows as is."""
    if rule.strategy == "none":
        return None
    keep_start, keep_end, mask_char = rule.keep_start, rule.keep_end, rule.mask_char
    if rule.strategy == "partial":
        return lambda text: mask_partial(text, keep_start, keep_end, mask_char)
    if rule.strategy == "email":
        return lambda text: mask_email(text, keep_start, keep_end, mask_char)
    return functools.partial(apply_mask, rule=rule)
