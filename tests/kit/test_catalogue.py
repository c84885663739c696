"""The data catalogue: the shipped file loads and says what the policy says; malformed
files are refused with the file, line and path of every problem."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kit.catalogue import (
    Catalogue,
    CatalogueError,
    Duration,
    default_catalogue,
    json_schema_text,
    load_catalogue,
    main,
    parse_catalogue,
)
from kit.settings import DEFAULT_CATALOGUE, REPO_ROOT

SCHEMA_FILE = REPO_ROOT / "policy" / "catalogue.schema.json"

# A small valid catalogue; the malformed cases below each change one thing in it.
MINIMAL = """\
version: 1
purposes:
  - id: order.query
    kind: basic
    description: The owner's view of an order.
    policy_section: 2D
  - id: location
    kind: additional
    description: Address autofill, nearby, location tags.
    policy_section: 2G
data_categories:
  - id: user.contact.phone_number
    name: Phone number
    name_zh: 手机号码
    description: A phone number.
    sensitive: false
masking_rules:
  - id: phone
    strategy: partial
    keep_start: 3
    keep_end: 4
    description: 138****5678
retention:
  - id: transaction_record
    duration: P3Y
    starts: order_completed
    then: anonymise
    legal_basis: E-Commerce Law art. 31
resources:
  orders.order:
    fields:
      consignee_phone:
        category: user.contact.phone_number
        purposes:
          order.query: phone
        retention: transaction_record
"""


def line_of(text: str, needle: str) -> int:
    """The 1-based number of the line where ``needle`` (which may span lines) starts."""
    assert needle in text, f"{needle!r} not in the text"
    return text[: text.index(needle)].count("\n") + 1


def refused(tmp_path: Path, text: str) -> CatalogueError:
    path = tmp_path / "catalogue.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    return caught.value


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work inside ``tmp_path`` so that messages name the file as ``catalogue.yaml``."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- the shipped catalogue ----------------------------------------------------------------


def test_shipped_catalogue_loads() -> None:
    catalogue = load_catalogue(DEFAULT_CATALOGUE)
    assert catalogue.version >= 1
    assert catalogue == default_catalogue()
    assert {"orders.order", "identity.verification"} <= set(catalogue.resources)


def test_check_command_accepts_the_shipped_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(DEFAULT_CATALOGUE)]) == 0
    assert ": ok (version" in capsys.readouterr().out


def test_minimal_catalogue_loads() -> None:
    catalogue = parse_catalogue(MINIMAL)
    rule = catalogue.masking_for("orders.order", "consignee_phone", "order.query")
    assert rule is not None and rule.id == "phone"


def test_committed_json_schema_matches_the_models(capsys: pytest.CaptureFixture[str]) -> None:
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == json_schema_text(), (
        "regenerate: python -m kit.catalogue schema > policy/catalogue.schema.json"
    )
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(committed)


@pytest.mark.obligation("OB-0-1")
def test_additional_functions_are_declared_apart_from_basic_ones() -> None:
    catalogue = default_catalogue()
    additional = {purpose.id for purpose in catalogue.additional_purposes()}
    assert additional == {
        "location",
        "recommendation.personalised",
        "search.image_voice",
        "marketing.price_drop",
    }
    basic = {purpose.id for purpose in catalogue.purposes_of_kind("basic")}
    assert {"account", "browse", "cart", "order.fulfilment", "order.query"} <= basic
    assert {"customer_service", "logistics.delivery", "security.anti_fraud"} <= basic
    assert not additional & basic
    separate = {purpose.id for purpose in catalogue.purposes_of_kind("separate")}
    assert separate == {"sensitive.face_verification", "cross_border.transfer"}


@pytest.mark.obligation("OB-0-1")
def test_every_location_function_of_policy_2g_is_an_additional_purpose() -> None:
    catalogue = default_catalogue()
    section_2g = [purpose for purpose in catalogue.purposes if "2G" in purpose.policy_section]
    assert [purpose.id for purpose in section_2g] == ["location"]
    location = catalogue.purpose("location")
    assert location.kind == "additional"
    for function in ("address", "nearby", "location to what the user publishes"):
        assert function in location.description


def test_partner_purposes_are_entrusted_basic_purposes() -> None:
    catalogue = default_catalogue()
    entrusted = {purpose.id for purpose in catalogue.purposes if purpose.entrusted}
    assert entrusted == {"logistics.delivery", "customs.clearance", "tax.invoice", "order.payment"}
    assert all(catalogue.purpose(item).kind == "basic" for item in entrusted)
    assert {purpose.id for purpose in catalogue.purposes_of_kind("legal")} == {
        "legal.retention",
        "rights.access",
        "incident.notification",
    }


def test_sensitive_categories_follow_pipl_article_28() -> None:
    catalogue = default_catalogue()
    sensitive = {item.id for item in catalogue.data_categories if item.sensitive}
    assert sensitive == {
        "user.government_id.national_identification_number",
        "user.biometric.face",
        "user.location.precise",
        "user.account.credentials",
        "user.minor.age",
    }
    assert not catalogue.category("system.operations").personal
    assert catalogue.is_sensitive("identity.verification", "id_number")
    assert catalogue.is_sensitive("orders.order", "customs_id_number")
    assert not catalogue.is_sensitive("orders.order", "consignee_phone")


def test_every_category_has_a_short_name_in_chinese_and_in_english() -> None:
    """The privacy center shows these instead of the ids, by the page's language."""
    catalogue = default_catalogue()
    names_zh = {item.id: item.name_zh for item in catalogue.data_categories}
    names = {item.id: item.name for item in catalogue.data_categories}
    assert all(re.search(r"[\u4e00-\u9fff]", name) for name in names_zh.values()), names_zh
    assert all(name.isascii() and name != key for key, name in names.items()), names
    # Short, and each names one kind of data: no two categories share a name.
    assert max(len(name) for name in names_zh.values()) <= 10
    assert len(set(names_zh.values())) == len(set(names.values())) == len(names)
    assert names_zh["user.contact.address"] == "详细地址"
    assert names["user.location.precise"] == "Precise location"


def test_owner_sees_the_order_and_customer_service_sees_it_masked() -> None:
    catalogue = default_catalogue()
    owner = catalogue.visible_fields("orders.order", "order.query")
    assert owner["consignee_phone"].id == "full"
    assert owner["address_detail"].id == "full"
    service = catalogue.visible_fields("orders.order", "customer_service")
    assert service["consignee_name"].id == "name"
    assert service["consignee_phone"].id == "phone"
    assert service["address_detail"].id == "address_detail"
    assert service["invoice_email"].id == "email"


PURCHASE_RECORD = ("lines", "subtotal", "discounts", "discount_total", "amount_payable")


def test_partners_see_only_what_their_duty_needs() -> None:
    catalogue = default_catalogue()
    fields = set(catalogue.fields_for("orders.order"))
    delivery = catalogue.visible_fields("orders.order", "logistics.delivery")
    assert delivery["consignee_name"].id == "name"
    assert delivery["consignee_phone"].id == "phone"
    assert delivery["address_region"].id == "full"
    assert delivery["address_detail"].id == "full"
    assert not {"invoice_tax_id", "invoice_email", "customs_name", "customs_id_number"} & set(
        delivery
    )
    assert not set(PURCHASE_RECORD) & set(delivery)  # a courier never sees what was paid
    customs = catalogue.visible_fields("orders.order", "customs.clearance")
    assert set(customs) == {"customs_name", "customs_id_number", *PURCHASE_RECORD}
    invoice = catalogue.visible_fields("orders.order", "tax.invoice")
    assert set(invoice) == {"invoice_title", "invoice_tax_id", "invoice_email", *PURCHASE_RECORD}
    assert catalogue.masking_for("orders.order", "customs_id_number", "logistics.delivery") is None
    assert set(delivery) | set(customs) | set(invoice) <= fields


@pytest.mark.obligation("OB-2A-3")
def test_id_numbers_and_faces_are_never_displayed_in_full() -> None:
    catalogue = default_catalogue()
    national_id = "user.government_id.national_identification_number"
    for resource_name, resource in catalogue.resources.items():
        for field_name, policy in resource.fields.items():
            if policy.category == national_id:
                shown_full = {p for p, rule in policy.purposes.items() if rule == "full"}
                # Only the customs broker and authorities under legal retention need the
                # whole number; every display is masked.
                assert shown_full <= {"customs.clearance", "legal.retention"}, field_name
                assert all(
                    catalogue.masking_rule(rule).strategy in ("partial", "redact", "none")
                    for rule in policy.purposes.values()
                )
            if policy.category == "user.biometric.face":
                assert set(policy.purposes.values()) == {"redact"}, (resource_name, field_name)
                assert catalogue.retention_for(resource_name, field_name).period.is_zero


def test_transaction_records_are_kept_three_years_from_completion() -> None:
    catalogue = default_catalogue()
    for field in ("consignee_name", "consignee_phone", "address_detail", "customs_id_number"):
        period = catalogue.retention_for("orders.order", field)
        assert (period.duration, period.starts, period.then) == (
            "P3Y",
            "order_completed",
            "anonymise",
        )
    completed = datetime(2025, 3, 1, tzinfo=UTC)
    expiry = catalogue.retention_for("orders.order", "consignee_name").expires_at(completed)
    assert expiry == datetime(2028, 3, 1, tzinfo=UTC)


def test_personal_field_names_cover_every_resource() -> None:
    names = default_catalogue().personal_field_names()
    assert {"consignee_name", "consignee_phone", "address_detail", "invoice_tax_id"} <= names
    assert {"real_name", "id_number", "face_image", "customs_id_number"} <= names
    assert "order_no" not in names and "status" not in names
    assert set(PURCHASE_RECORD) <= names  # amounts are the buyer's personal data


def test_lookups_refuse_unknown_names() -> None:
    catalogue = default_catalogue()
    with pytest.raises(KeyError, match="unknown purpose"):
        catalogue.masking_for("orders.order", "consignee_phone", "order.qery")
    with pytest.raises(KeyError, match="unknown resource"):
        catalogue.fields_for("orders.orders")
    with pytest.raises(KeyError, match="unknown purpose"):
        catalogue.purpose("marketing")
    # a field the catalogue does not list fails closed
    assert catalogue.masking_for("orders.order", "password", "order.query") is None
    assert not catalogue.has_purpose("nope")


def test_catalogue_is_frozen() -> None:
    catalogue = default_catalogue()
    with pytest.raises(ValueError, match="frozen"):
        catalogue.version = 2  # type: ignore[misc]
    assert isinstance(catalogue, Catalogue)


# -- malformed files: each refused with the problem and its line ------------------------


MALFORMED = [
    pytest.param(
        "category: user.contact.phone_number\n        purposes",
        "category: user.contact.phone\n        purposes",
        "category: user.contact.phone\n",
        "resources.orders.order.fields.consignee_phone.category: "
        "unknown data category 'user.contact.phone'",
        id="unknown-category",
    ),
    pytest.param(
        "order.query: phone",
        "order.qery: phone",
        "order.qery: phone",
        "resources.orders.order.fields.consignee_phone.purposes.order.qery: "
        "unknown purpose 'order.qery'",
        id="unknown-purpose",
    ),
    pytest.param(
        "order.query: phone",
        "order.query: phonee",
        "order.query: phonee",
        "resources.orders.order.fields.consignee_phone.purposes.order.query: "
        "unknown masking rule 'phonee'",
        id="unknown-masking-rule",
    ),
    pytest.param(
        "retention: transaction_record",
        "retention: transaction_records",
        "retention: transaction_records",
        "resources.orders.order.fields.consignee_phone.retention: "
        "unknown retention period 'transaction_records'",
        id="unknown-retention",
    ),
    pytest.param(
        "- id: location",
        "- id: order.query",
        "- id: order.query\n    kind: additional",
        "purposes[1].id: duplicate purpose id 'order.query' (first defined on line 3)",
        id="duplicate-purpose-id",
    ),
    pytest.param(
        "duration: P3Y",
        "duration: P3X",
        "duration: P3X",
        "retention[0].duration: invalid ISO 8601 duration 'P3X'",
        id="bad-duration",
    ),
    pytest.param(
        "    name_zh: 手机号码\n",
        "",
        "- id: user.contact.phone_number",
        "data_categories[0]: missing required key 'name_zh'",
        id="category-without-chinese-name",
    ),
    pytest.param(
        "kind: additional",
        "kind: additional\n    colour: red",
        "colour: red",
        "purposes[1].colour: unknown key 'colour'",
        id="extra-unknown-key",
    ),
    pytest.param(
        "kind: additional",
        "kind: optional",
        "kind: optional",
        "purposes[1].kind: Input should be 'basic', 'additional', 'separate' or 'legal'",
        id="unknown-purpose-kind",
    ),
    pytest.param(
        "    policy_section: 2G\n",
        "",
        "- id: location",
        "purposes[1]: missing required key 'policy_section'",
        id="missing-key",
    ),
    pytest.param(
        "version: 1",
        'version: "1"',
        "version:",
        "version: Input should be a valid integer",
        id="version-not-an-integer",
    ),
    pytest.param(
        "        retention: transaction_record\n",
        "        retention: transaction_record\n        retention: transaction_record\n",
        "#last",
        "resources.orders.order.fields.consignee_phone.retention: duplicate key 'retention'",
        id="duplicate-yaml-key",
    ),
    pytest.param(
        "    description: 138****5678\n",
        "    description: 138****5678\n  - id: full\n    strategy: none\n    keep_start: 2\n"
        "    description: shown as is\n",
        "strategy: none",
        "masking_rules[1].strategy: strategy 'none' takes no keep_start/keep_end",
        id="none-strategy-with-keep",
    ),
    pytest.param(
        "  orders.order:",
        "  Orders:",
        "Orders:",
        "resources.Orders: invalid name: String should match pattern",
        id="bad-resource-name",
    ),
]


@pytest.mark.parametrize(("old", "new", "needle", "expected"), MALFORMED)
def test_malformed_catalogue_is_refused_with_line_and_path(
    in_tmp: Path, old: str, new: str, needle: str, expected: str
) -> None:
    assert old in MINIMAL
    text = MINIMAL.replace(old, new, 1)
    line = len(text.splitlines()) if needle == "#last" else line_of(text, needle)
    error = refused(in_tmp, text)
    assert isinstance(error, ValueError)
    assert f"catalogue.yaml:{line}: {expected}" in str(error), str(error)


def test_bad_yaml_syntax_is_refused_with_its_line(in_tmp: Path) -> None:
    text = MINIMAL.replace("kind: additional", "kind: additional: oops")
    error = refused(in_tmp, text)
    line = line_of(text, "additional: oops")
    assert str(error).startswith(f"catalogue.yaml:{line}: YAML syntax error:"), str(error)
    assert "mapping values are not allowed here" in str(error)


def test_every_problem_is_reported_one_per_line_in_file_order(in_tmp: Path) -> None:
    text = MINIMAL.replace("order.query: phone", "order.qery: phonee")
    text = text.replace("duration: P3Y", "duration: three years")
    text = text.replace("        category: user.contact.phone_number", "        category: user.x")
    text = text.replace("kind: additional", "kind: additional\n    colour: red")
    error = refused(in_tmp, text)
    lines = str(error).splitlines()
    assert len(lines) == len(error.problems) == 5, lines
    assert [problem.line for problem in error.problems] == sorted(
        problem.line for problem in error.problems
    )
    assert all(line.startswith("catalogue.yaml:") for line in lines)
    messages = "\n".join(lines)
    for fragment in (
        "unknown key 'colour'",
        "invalid ISO 8601 duration 'three years'",
        "unknown data category 'user.x'",
        "unknown purpose 'order.qery'",
        "unknown masking rule 'phonee' (did you mean 'phone'?)",
    ):
        assert fragment in messages


def test_top_level_must_be_a_mapping(in_tmp: Path) -> None:
    assert "catalogue.yaml:1: (top level): the catalogue must be a mapping" in str(
        refused(in_tmp, "- just a list\n")
    )
    assert "catalogue.yaml:1: (top level)" in str(refused(in_tmp, ""))


def test_sensitive_category_must_be_personal(in_tmp: Path) -> None:
    text = MINIMAL.replace(
        "    sensitive: false\n",
        "    sensitive: false\n  - id: system.operations\n    name: Logs\n    name_zh: 日志\n"
        "    description: logs\n"
        "    sensitive: true\n",
    )
    error = refused(in_tmp, text)
    line = line_of(text, "sensitive: true")
    assert f"catalogue.yaml:{line}: data_categories[1].sensitive:" in str(error)


def test_unreadable_file_is_a_catalogue_error(in_tmp: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot read the file"):
        load_catalogue(in_tmp / "missing.yaml")


def test_check_command_prints_problems_and_fails(
    in_tmp: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = in_tmp / "catalogue.yaml"
    path.write_text(MINIMAL.replace("order.query: phone", "order.query: phonee"), "utf-8")
    assert main(["check", str(path)]) == 1
    assert "unknown masking rule 'phonee'" in capsys.readouterr().err


# -- durations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("P3Y", Duration(years=3)),
        ("P30D", Duration(days=30)),
        ("P0D", Duration()),
        ("P1Y6M", Duration(years=1, months=6)),
        ("P2W", Duration(weeks=2)),
        ("PT12H", Duration(hours=12)),
        ("P1DT30M", Duration(days=1, minutes=30)),
    ],
)
def test_durations_parse(text: str, parsed: Duration) -> None:
    assert Duration.parse(text) == parsed
    assert str(parsed) == text


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "3Y", "P1.5Y", "p3y", "P3Y2", "P-1D"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid ISO 8601 duration"):
        Duration.parse(text)


def test_duration_after_uses_calendar_years_and_months() -> None:
    leap_day = datetime(2024, 2, 29, 12, 0, tzinfo=UTC)
    assert Duration(years=1).after(leap_day) == datetime(2025, 2, 28, 12, 0, tzinfo=UTC)
    assert Duration(months=11).after(leap_day) == datetime(2025, 1, 29, 12, 0, tzinfo=UTC)
    assert Duration(days=30).after(leap_day) == datetime(2024, 3, 30, 12, 0, tzinfo=UTC)
    assert Duration().after(leap_day) == leap_day
