"""Display masking: the GB/T 35273 examples exactly, with the shipped catalogue's rules."""

from __future__ import annotations

import pytest

from kit.catalogue import MaskingRule, default_catalogue
from kit.masking import apply_mask, mask_value


def rule(rule_id: str) -> MaskingRule:
    return default_catalogue().masking_rule(rule_id)


def partial(keep_start: int, keep_end: int, mask_char: str = "*") -> MaskingRule:
    return MaskingRule(
        id="test",
        strategy="partial",
        keep_start=keep_start,
        keep_end=keep_end,
        mask_char=mask_char,
        description="test",
    )


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("张三", "张*"),
        ("欧阳娜娜", "欧***"),
        ("李小龙", "李**"),
        ("Li Lei", "L*****"),
    ],
)
def test_names_keep_the_first_character(value: str, masked: str) -> None:
    assert apply_mask(value, rule("name")) == masked


def test_phone_keeps_three_and_four() -> None:
    assert apply_mask("13812345678", rule("phone")) == "138****5678"


@pytest.mark.obligation("OB-2A-3")
@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("11010519491231002X", "1****************X"),
        ("110101199003071234", "1****************4"),
        ("110105491231002", "1*************2"),  # 15-digit first-generation ID
    ],
)
def test_id_numbers_are_displayed_masked(value: str, masked: str) -> None:
    shown = apply_mask(value, rule("national_id"))
    assert shown == masked
    assert shown is not None and len(shown) == len(value)


@pytest.mark.obligation("OB-2A-3")
def test_id_numbers_are_masked_wherever_the_catalogue_shows_them_to_the_user() -> None:
    catalogue = default_catalogue()
    for purpose in ("order.query", "customer_service", "rights.access"):
        shown_rule = catalogue.masking_for("orders.order", "customs_id_number", purpose)
        assert shown_rule is not None
        assert apply_mask("11010519491231002X", shown_rule) == "1****************X"
    face = catalogue.masking_for(
        "identity.verification", "face_image", "sensitive.face_verification"
    )
    assert face is not None and apply_mask("base64-image-bytes", face) is None


def test_tax_id_keeps_two_and_four() -> None:
    assert apply_mask("91350100M000100Y43", rule("tax_id")) == "91************0Y43"


def test_address_detail_keeps_the_street_start() -> None:
    assert apply_mask("建国路88号院3号楼501室", rule("address_detail")) == "建国路***********"


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("zhangsan@example.com", "z*******@example.com"),
        ("张三@例子.中国", "张*@例子.中国"),
        ("a@example.com", "*@example.com"),
        ("a.b@c@example.com", "a****@example.com"),  # the domain is after the last @
        ("not-an-address", "**************"),
        ("@example.com", "@example.com"),
    ],
)
def test_email_masks_the_local_part_and_keeps_the_domain(value: str, masked: str) -> None:
    assert apply_mask(value, rule("email")) == masked


def test_redact_removes_the_value() -> None:
    assert apply_mask("13812345678", rule("redact")) is None


def test_none_shows_the_value_as_is() -> None:
    assert apply_mask("北京市朝阳区", rule("full")) == "北京市朝阳区"


@pytest.mark.parametrize(
    ("value", "rule_id", "masked"),
    [
        ("张", "name", "*"),  # a one-character value is fully masked
        ("", "name", ""),  # nothing to hide
        ("1234567", "phone", "1******"),  # 3 + 4 would show everything: first char only
        ("138", "phone", "1**"),
        ("12345678", "phone", "123*5678"),  # one character hidden, as the rule says
        ("1X", "national_id", "1*"),
        ("7", "national_id", "*"),
        ("9135", "tax_id", "9***"),
        ("建国路", "address_detail", "建**"),
    ],
)
def test_short_values_never_show_more_than_the_first_character(
    value: str, rule_id: str, masked: str
) -> None:
    assert apply_mask(value, rule(rule_id)) == masked


def test_masking_keeps_length_and_uses_the_mask_char() -> None:
    assert apply_mask("13812345678", partial(3, 4, "#")) == "138####5678"
    assert apply_mask("13812345678", partial(0, 0)) == "***********"
    assert apply_mask("13812345678", partial(0, 4)) == "*******5678"


def test_mask_value_handles_json_values() -> None:
    phone = rule("phone")
    assert mask_value(["13812345678", "13900001111"], phone) == ["138****5678", "139****1111"]
    assert mask_value(None, phone) is None
    assert mask_value(13812345678, phone) == "138****5678"
    assert mask_value({"nested": "13812345678"}, phone) is None
    assert mask_value({"nested": 1}, rule("full")) == {"nested": 1}
    assert mask_value(["13812345678"], rule("redact")) is None


def test_masking_rules_refuse_bad_settings() -> None:
    with pytest.raises(ValueError, match="at most 1 character"):
        partial(1, 1, "**")
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        partial(-1, 1)
