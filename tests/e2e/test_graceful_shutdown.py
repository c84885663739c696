"""Graceful shutdown (README "Graceful shutdown"): SIGTERM to a gateway under a load of owner
reads cuts no request and loses no access event.

A gateway of its own (own port, own database, the suite's services and broker) serves
concurrent readers, each on one keep-alive connection, as a client or load balancer would:
when an answer says ``Connection: close`` the gateway is draining and the reader goes
elsewhere. The signal comes with ``GATEWAY_SHUTDOWN_DELAY_S`` of 1 s. Every request sent
must get its full answer (200), requests in flight at the signal included; the process must
exit within its grace period; its outbox must be empty; and Kafka must hold each read's
access event exactly once.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from kit.migrations import upgrade
from kit.testing import LocalPostgres
from tests.e2e.suite import AppProcess, Person, Suite, free_port
from tests.gateway.test_gateway_kafka import raw_values

READERS = 12
LOAD_BEFORE_SIGNAL_S = 1.0
DELAY_S = 1.0
GRACE_S = 30.0


@dataclass(frozen=True)
class Outcome:
    started: float
    ended: float
    status: int | None
    closing: bool
    error: str | None


async def _outbox_rows(database_url: str) -> int:
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    connection = await asyncpg.connect(dsn)
    try:
        count: int = await connection.fetchval("SELECT count(*) FROM outbox")
        return count
    finally:
        await connection.close()


async def _owner_with_an_order(suite: Suite) -> tuple[str, dict[str, str], str]:
    """A user with an order: their id, Authorization header and the order's path."""
    goods = await suite.call(
        "POST",
        "/orders/admin/goods",
        headers=suite.admin,
        json={"name": "Oolong tea", "price": "29.90"},
        expect=201,
    )
    person = Person.new()
    subject, headers = await suite.register(person)
    placed = await suite.call(
        "POST",
        "/orders/orders",
        headers={**headers, "Idempotency-Key": secrets.token_hex(8)},
        json=person.order_body(goods["goods_id"]),
        expect=201,
    )
    return subject, headers, f"/orders/orders/{placed['order_id']}"


async def _access_events(suite: Suite, subject: str) -> list[str]:
    """The ids of the gateway's order.query read events of ``subject`` in Kafka."""
    events = [
        json.loads(value)
        for value in await raw_values(
            suite.bootstrap_servers, f"{suite.topic_prefix}gateway.events"
        )
    ]
    reads = [
        e["id"]
        for e in events
        if e["subject"] == subject
        and e["type"] == "com.signature.gateway.personal_data.read.v1"
        and e["purpose"] == "order.query"
    ]
    return reads


async def _reader(url: str, path: str, headers: dict[str, str], outcomes: list[Outcome]) -> None:
    """Reads on one keep-alive connection until an answer says the gateway is draining."""
    clock = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=url, timeout=GRACE_S) as client:
        while True:
            started = clock.time()
            try:
                response = await client.get(path, headers=headers)
            except httpx.HTTPError as exc:
                outcomes.append(Outcome(started, clock.time(), None, False, repr(exc)))
                return
            closing = response.headers.get("connection", "").lower() == "close"
            outcomes.append(Outcome(started, clock.time(), response.status_code, closing, None))
            if closing:  # draining: a client goes elsewhere
                return


async def test_sigterm_under_load_cuts_no_request_and_loses_no_access_event(
    suite: Suite, postgres: LocalPostgres, tmp_path: Path
) -> None:
    subject, headers, path = await _owner_with_an_order(suite)

    async with postgres.database() as database_url:
        await upgrade("gateway", database_url)
        env = {
            **suite.processes["gateway"].env,
            "GATEWAY_DATABASE_URL": database_url,
            "GATEWAY_SHUTDOWN_DELAY_S": str(DELAY_S),
            "GATEWAY_SHUTDOWN_GRACE_S": str(GRACE_S),
            "GATEWAY_OPS_PORT": str(ops_port := free_port()),
        }
        gateway = AppProcess("gateway", free_port(), env, tmp_path / "gateway.log")
        gateway.ops_port = ops_port
        gateway.start()
        try:
            await gateway.wait_ready()
            async with httpx.AsyncClient(base_url=gateway.url, timeout=GRACE_S) as warm_up:
                assert (await warm_up.get(path, headers=headers)).status_code == 200
            clock = asyncio.get_running_loop()
            outcomes: list[Outcome] = []

            loaded_at = clock.time()
            readers = [
                asyncio.create_task(_reader(gateway.url, path, headers, outcomes))
                for _ in range(READERS)
            ]
            # Under load: every reader has had answers, and requests are in flight.
            while len(outcomes) < 2 * READERS or clock.time() - loaded_at < LOAD_BEFORE_SIGNAL_S:
                assert clock.time() - loaded_at < GRACE_S, "the gateway never served the load"
                await asyncio.sleep(0.05)
            assert gateway.process is not None
            signalled = clock.time()
            gateway.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(asyncio.gather(*readers), GRACE_S)
            returncode = await asyncio.to_thread(gateway.process.wait, GRACE_S)
            exited_after = clock.time() - signalled
            remaining = await _outbox_rows(database_url)
        finally:
            gateway.stop()

    answered = [o for o in outcomes if o.status == 200]
    failed = [o for o in outcomes if o.status != 200]
    in_flight_at_signal = [o for o in answered if o.started < signalled < o.ended]
    print(
        f"\ngraceful shutdown: {len(answered)} reads answered, {len(failed)} not, "
        f"{len(in_flight_at_signal)} in flight at SIGTERM, exit {exited_after:.2f}s after it; "
        f"slowest read {max(o.ended - o.started for o in outcomes):.2f}s"
    )
    assert failed == [], failed[:5]
    assert sum(o.closing for o in outcomes) == READERS  # every reader was told to move on
    assert in_flight_at_signal, "no request was in flight at the signal: nothing was drained"
    # uvicorn ends by raising the signal it caught again (the conventional exit status)
    assert returncode == -signal.SIGTERM
    assert exited_after < GRACE_S
    assert remaining == 0  # the relay published everything before the process exited

    reads = await _access_events(suite, subject)
    assert len(reads) == len(answered) + 1  # and the warm-up read
    assert len(set(reads)) == len(reads)
