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
- :meth:`FieldFilter.refused_inputs` names the top-level keys of a request body that are
  personal fields of the resource the purpose may not submit (conservative: a purpose that
  may not see a field may not send it either).

Resource-agnostic: the gateway uses it; a service can use it for its own views.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kit.catalogue import Catalogue, MaskingRule
from kit.masking import mask_value

__all__ = ["FieldFilter", "FilterResult"]


@dataclass(frozen=True)
class FilterResult:
    value: Any
    #: The data categories of the personal fields left in ``value`` (non-null), sorted.
    categories: tuple[str, ...]
    #: How many personal fields were removed, and how many masked (not shown as they are).
    removed: int = 0
    masked: int = 0


class FieldFilter:
    """Per resource and purpose, the personal fields shown and how; compiled once."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._personal: dict[str, frozenset[str]] = {}
        self._categories: dict[str, dict[str, str]] = {}
        self._rules: dict[str, dict[str, dict[str, MaskingRule]]] = {}
        purposes = [purpose.id for purpose in catalogue.purposes]
        for name, resource in catalogue.resources.items():
            self._personal[name] = frozenset(resource.fields)
            self._categories[name] = {
                field: policy.category for field, policy in resource.fields.items()
            }
            self._rules[name] = {
                purpose: catalogue.visible_fields(name, purpose) for purpose in purposes
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
        rules = self.visible(resource, purpose)
        personal = self._personal[resource]
        categories = self._categories[resource]
        found: set[str] = set()
        counts = {"removed": 0, "masked": 0}

        def walk(node: Any) -> Any:
            if isinstance(node, dict):
                out: dict[str, Any] = {}
                for key, item in node.items():
                    if key in personal:
                        rule = rules.get(key)
                        if rule is None:
                            counts["removed"] += 1
                            continue  # not for this purpose: removed, never leaked
                        shown = mask_value(item, rule)
                        if shown != item:
                            counts["masked"] += 1
                        if shown is not None and shown != []:
                            found.add(categories[key])
                        out[key] = shown
                    else:
                        out[key] = walk(item)
                return out
            if isinstance(node, list):
                return [walk(item) for item in node]
            return node

        filtered = walk(value)
        return FilterResult(filtered, tuple(sorted(found)), **counts)

    def refused_inputs(self, body: Any, *, resource: str, purpose: str) -> list[str]:
        """Top-level keys of ``body`` that are personal fields ``purpose`` may not submit."""
        if not isinstance(body, dict):
            return []
        rules = self.visible(resource, purpose)
        personal = self._personal[resource]
        return sorted(key for key in body if key in personal and key not in rules)

    def categories_of(self, resource: str, fields: Iterable[str]) -> list[str]:
        table = self._categories[resource]
        return sorted({table[field] for field in fields if field in table})
