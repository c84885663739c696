"""Leak scans: where in the running suite a personal value can still be read in plaintext.

:func:`scan_suite` looks for each value, as UTF-8 text and as the hex PostgreSQL shows for
``bytea``, in:

- every table of every app's database (each row as JSON text);
- every record of every topic under the suite's prefix, read back from the broker (keys,
  values and headers, decompressed), and, when the broker is the local test broker, the
  raw files of those topics' partitions under its data directory;
- the log of every process.

Dead-letter topics (``<topic>.dlq``, their ``dlq.error`` headers included) are topics under
the prefix like the others.

What is looked for: every personal field of ``policy/catalogue.yaml`` is named in
:data:`CATALOGUE_VALUES`, either with the values of :meth:`tests.e2e.suite.Person.values`
that stand for it or with the reason no unique value can (``tests/e2e/test_scan.py`` fails
when the catalogue gains a field this table does not name).

A finding names the place (database and table, topic, file) and what was found, never the
value itself, so a failing test does not print personal data either.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.engine import make_url

from kit.settings import REPO_ROOT
from kit.testing import read_records

#: The data directory of the test broker of ``tests/conftest.py`` (127.0.0.1:29092).
TEST_BROKER = "127.0.0.1:29092"
TEST_BROKER_DATA = REPO_ROOT / ".run" / "kafka-test" / "data"


#: Every personal field of the catalogue (``resource.field``): the ``Person.values()`` keys
#: a scan looks for, or, as a string, why no value unique to a user can stand for it.
CATALOGUE_VALUES: Mapping[str, tuple[str, ...] | str] = {
    "orders.order.consignee_name": ("name",),
    "orders.order.consignee_phone": ("phone",),
    "orders.order.address_region": "province, city and district are shared by a region",
    "orders.order.address_detail": ("address",),
    "orders.order.postal_code": "six digits shared by a district (and found in any hex)",
    "orders.order.extra_phones": ("extra phone",),
    "orders.order.invoice_title": ("name",),
    "orders.order.invoice_tax_id": ("taxpayer id",),
    "orders.order.invoice_email": ("email",),
    "orders.order.customs_name": ("name",),
    "orders.order.customs_id_number": ("id number",),
    "orders.order.lines": "goods, quantities and prices are the shop's, shared by buyers",
    "orders.order.subtotal": "an amount, shared by every buyer of the same goods",
    "orders.order.discounts": "discount codes are the shop's, shared by buyers",
    "orders.order.discount_total": "an amount, shared by every buyer of the same goods",
    "orders.order.amount_payable": "an amount, shared by every buyer of the same goods",
    "orders.order.remarks": ("remarks",),
    "orders.cart.cart_items": "goods ids and quantities, shared by buyers",
    "orders.search.search_history": ("search words",),
    "orders.support.messages": (
        "free text: tests/e2e/test_support.py plants each kind of value in messages and "
        "scans the training export for them"
    ),
    "orders.location.latitude": ("latitude",),
    "orders.location.longitude": ("longitude",),
    "identity.account.phone": ("phone",),
    "identity.account.password_hash": ("password",),  # the password itself, never stored
    "identity.mini_program.openid": "made by the platform, not a value the Person holds",
    "identity.mini_program.unionid": "made by the platform, not a value the Person holds",
    "identity.mini_program.session_key": "made by the platform at each sign-in; "
    "tests/security/test_sign_in_attacks.py scans for every one the stand-in issued",
    "identity.verification.real_name": ("name",),
    "identity.verification.id_number": ("id number",),
    "identity.verification.face_image": ("face image", "face bytes"),
}


@dataclass(frozen=True)
class Finding:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.what} found in {self.where}"


def _needles(values: Mapping[str, str]) -> list[tuple[str, bytes]]:
    needles: list[tuple[str, bytes]] = []
    for what, value in values.items():
        raw = value.encode()
        needles.append((what, raw))
        needles.append((f"{what} (as bytea hex)", raw.hex().encode()))
    return needles


def _search(where: str, blob: bytes, needles: Iterable[tuple[str, bytes]]) -> list[Finding]:
    return [Finding(where, what) for what, needle in needles if needle in blob]


async def scan_databases(
    database_urls: Mapping[str, str], values: Mapping[str, str]
) -> tuple[list[Finding], int]:
    """Findings, and how many rows were read."""
    needles = _needles(values)
    findings: list[Finding] = []
    rows_read = 0
    for app, url in database_urls.items():
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = await asyncpg.connect(dsn)
        try:
            tables = await connection.fetch(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            )
            for table in tables:
                name = table["table_name"]
                rows = await connection.fetch(f'SELECT row_to_json(t)::text AS row FROM "{name}" t')
                rows_read += len(rows)
                blob = "\n".join(row["row"] for row in rows).encode()
                findings += _search(f"database {app}, table {name}", blob, needles)
        finally:
            await connection.close()
    return findings, rows_read


async def topics_under(bootstrap_servers: str, prefix: str) -> list[str]:
    """Every topic of the broker whose name starts with ``prefix``, sorted."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if t.startswith(prefix))
    finally:
        await admin.close()


async def scan_topics(
    bootstrap_servers: str, prefix: str, values: Mapping[str, str]
) -> tuple[list[Finding], int]:
    """Findings in every record of the prefix's topics, and how many records were read."""
    needles = _needles(values)
    topics = await topics_under(bootstrap_servers, prefix)
    findings: list[Finding] = []
    records = 0
    for topic in topics:
        chunks: list[bytes] = []
        for message in await read_records(bootstrap_servers, topic):
            records += 1
            chunks += [message.key or b"", message.value or b""]
            chunks += [value for _, value in message.headers]
        findings += _search(f"topic {topic}", b"\n".join(chunks), needles)
    return findings, records


def scan_topic_files(
    bootstrap_servers: str, prefix: str, values: Mapping[str, str]
) -> tuple[list[Finding], int]:
    """The raw segment files of the prefix's partitions (test broker only): findings and
    how many files were read."""
    if bootstrap_servers != TEST_BROKER or not TEST_BROKER_DATA.is_dir():
        return [], 0
    needles = _needles(values)
    findings: list[Finding] = []
    files = 0
    for directory in TEST_BROKER_DATA.glob(f"{prefix}*"):
        for path in directory.iterdir():
            if path.is_file():
                files += 1
                findings += _search(
                    f"Kafka file {directory.name}/{path.name}", path.read_bytes(), needles
                )
    return findings, files


def scan_logs(log_dir: Path, values: Mapping[str, str]) -> tuple[list[Finding], int]:
    needles = _needles(values)
    findings: list[Finding] = []
    paths = sorted(log_dir.glob("*.log"))
    for path in paths:
        findings += _search(f"log {path.name}", path.read_bytes(), needles)
    return findings, len(paths)


@dataclass(frozen=True)
class ScanReport:
    findings: list[Finding]
    rows: int
    records: int
    files: int
    logs: int

    def summary(self) -> str:
        return json.dumps(
            {"rows": self.rows, "records": self.records, "files": self.files, "logs": self.logs}
        )


async def scan_suite(
    *,
    database_urls: Mapping[str, str],
    bootstrap_servers: str,
    prefix: str,
    log_dir: Path,
    values: Mapping[str, str],
) -> ScanReport:
    in_databases, rows = await scan_databases(database_urls, values)
    in_topics, records = await scan_topics(bootstrap_servers, prefix, values)
    in_files, files = scan_topic_files(bootstrap_servers, prefix, values)
    in_logs, logs = scan_logs(log_dir, values)
    return ScanReport(
        findings=in_databases + in_topics + in_files + in_logs,
        rows=rows,
        records=records,
        files=files,
        logs=logs,
    )
