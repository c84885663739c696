"""A broker outage is told once (issue 20, item 9): a real app (consent: its outbox relay,
consumers and consent-state view) on the outage broker, the broker stopped for a few
seconds and started again. Its log, as the app prints it, holds one ERROR line when the
outage starts and one line when it ends, with the retries counted; ``/metrics`` counts it."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from pathlib import Path

from kit.outage import OUTAGE
from kit.testing import LocalKafka, eventually, serve_app
from services.consent.config import Settings

OUTAGE_S = 5


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


async def _connected() -> bool:
    return not OUTAGE.active


async def test_a_broker_outage_is_one_error_line_and_counted(
    outage_kafka: LocalKafka, tmp_path: Path
) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'consent.db'}",
        kafka_bootstrap_servers=outage_kafka.bootstrap_servers,
        kafka_topic_prefix=f"outage{tmp_path.name[-6:].lower().replace('_', '')}.",
        log_json=False,
        outbox_max_backoff_s=0.5,
    )
    async with serve_app("services.consent", settings) as (_app, client):
        output = io.StringIO()
        [handler] = logging.getLogger().handlers  # what configure_logging installed
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(output)
        await eventually(_connected, timeout_s=60, what="the app connected")
        before = (await client.get("/metrics")).text
        outages_before = _metric(before, "kafka_outages_total")

        outage_kafka.stop()
        await asyncio.sleep(OUTAGE_S)  # the loops keep retrying meanwhile
        assert OUTAGE.active
        during = (await client.get("/metrics")).text
        assert _metric(during, "kafka_outage_active") == 1
        outage_kafka.start()
        await eventually(_connected, timeout_s=60, what="the app reconnected")

        after = (await client.get("/metrics")).text
        lines = output.getvalue().splitlines()

    errors = [line for line in lines if line.startswith(("ERROR", "CRITICAL"))]
    print(f"{OUTAGE_S}s outage: {len(lines)} log lines, {len(errors)} at error level")
    assert len(errors) == 1, "\n".join(errors[:20])
    assert "Kafka unreachable" in errors[0]
    ended = [line for line in lines if "Kafka reachable again" in line]
    assert len(ended) == 1, lines[:40]
    retries = int(re.search(r"; (\d+) retries", ended[0]).group(1))  # type: ignore[union-attr]
    assert retries >= 1
    warnings = [line for line in lines if line.startswith("WARNING")]
    assert len(warnings) <= 3, "\n".join(warnings[:20])  # the end, nothing per attempt
    assert _metric(after, "kafka_outages_total") == outages_before + 1
    assert _metric(after, "kafka_outage_active") == 0
    assert _metric(after, "kafka_outage_retries_total") >= retries
