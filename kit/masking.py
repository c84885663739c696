"""Display masking: the strategies the catalogue's masking rules name (GB/T 35273 style).

``apply_mask(value, rule)`` turns one string into what a purpose may see of it:

- ``none``: the value as is.
- ``redact``: ``None`` (the field is shown as null).
- ``partial``: the first ``keep_start`` and last ``keep_end`` characters stay, every hidden
  character becomes one ``mask_char``: ``张三`` -> ``张*``, ``13812345678`` ->
  ``138****5678``, an 18-character ID number with 1 + 1 kept -> ``1****************X``.
- ``email``: ``partial`` applied to the local part, the domain kept:
  ``zhangsan@example.com`` -> ``z*******@example.com``.

Characters are Unicode code points, so Chinese text masks per character (``欧阳娜娜`` with
``keep_start`` 1 -> ``欧***``).

Short values never show more than the rule means to. When a value is no longer than
``keep_start + keep_end`` (nothing would be hidden), only its first character stays, and
only when the rule keeps a start and the value has at least two characters; everything else
is masked. A one-character value is always fully masked, so a one-character name is ``*``,
not ``张``. An empty string stays empty (there is nothing to hide). A string without ``@``
given to the ``email`` strategy is not an address we can split: it is masked in full.
"""

from __future__ import annotations

from typing import assert_never

from kit.catalogue import MaskingRule

__all__ = ["apply_mask", "mask_email", "mask_partial", "mask_value"]


def mask_partial(value: str, keep_start: int, keep_end: int, mask_char: str = "*") -> str:
    """Keep ``keep_start`` leading and ``keep_end`` trailing code points, mask the rest."""
    length = len(value)
    if length == 0:
        return value
    if length <= keep_start + keep_end:
        # Nothing would be hidden: reveal at most the first character of a longer value.
        if keep_start >= 1 and length >= 2:
            return value[0] + mask_char * (length - 1)
        return mask_char * length
    hidden = length - keep_start - keep_end
    return value[:keep_start] + mask_char * hidden + value[length - keep_end :]


def mask_email(value: str, keep_start: int, keep_end: int, mask_char: str = "*") -> str:
    """Mask the local part of an address like :func:`mask_partial`, keep the domain."""
    local, at, domain = value.rpartition("@")
    if not at:
        return mask_char * len(value)
    return mask_partial(local, keep_start, keep_end, mask_char) + "@" + domain


def apply_mask(value: str, rule: MaskingRule) -> str | None:
    """What a purpose shown ``value`` under ``rule`` sees; ``None`` for ``redact``."""
    strategy = rule.strategy
    if strategy == "none":
        return value
    if strategy == "redact":
        return None
    if strategy == "partial":
        return mask_partial(value, rule.keep_start, rule.keep_end, rule.mask_char)
    if strategy == "email":
        return mask_email(value, rule.keep_start, rule.keep_end, rule.mask_char)
    assert_never(strategy)


def mask_value(value: object, rule: MaskingRule) -> object:
    """:func:`apply_mask` for a JSON value: ``None`` stays ``None``; a list (such as
    ``extra_phones``) is masked item by item; numbers are masked as their text. A nested
    object cannot be masked character by character, so anything but ``none`` turns it into
    ``None`` (fail closed)."""
    if value is None or rule.strategy == "none":
        return value
    if rule.strategy == "redact":
        return None
    if isinstance(value, str):
        return apply_mask(value, rule)
    if isinstance(value, list | tuple):
        return [mask_value(item, rule) for item in value]
    if isinstance(value, bool | int | float):
        return apply_mask(str(value), rule)
    return None
