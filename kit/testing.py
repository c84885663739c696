"""Helpers for tests that run against the real broker and database.

- :class:`LocalKafka` starts or stops a broker through ``deploy/kafka/kafka.sh``;
  :class:`LocalKafkaCluster` a cluster of brokers in its cluster mode;
- :class:`LocalPostgres` starts the cluster of ``deploy/postgres/pg.sh`` and makes
  throw-away databases;
- :func:`read_events` reads a topic from the beginning into :class:`~kit.events.Event`s;
- :func:`serve_app` migrates and starts an app and gives an in-process client for it;
  :func:`trust_only` and :func:`mint_token` let a test be its own token issuer, and
  :class:`AppUnderTest` (from :func:`app_under_test`) bundles them per app;
  :func:`outbox_events` reads what an app is about to publish;
- :func:`eventually` waits, bounded, for a condition; :class:`TopicSizes` counts records.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlmodel import col

from kit import contracts
from kit.app import AppContext
from kit.auth import (
    STAFF_ROLE_SCOPES,
    USER_SCOPES,
    KeySet,
    SigningKey,
    TokenVerifier,
    access_claims,
    generate_signing_key,
    issue_token,
    static_key_source,
)
from kit.db import Database
from kit.events import Event, new_event
from kit.ids import new_id
from kit.migrations import upgrade
from kit.models import OutboxMessage
from kit.settings import REPO_ROOT, ServiceSettings

KAFKA_SCRIPT = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"
POSTGRES_SCRIPT = REPO_ROOT / "deploy" / "postgres" / "pg.sh"


@dataclass
class LocalKafka:
    """A broker run by ``deploy/kafka/kafka.sh`` on the given ports and data directory."""

    port: int = 9092
    controller_port: int = 9093
    data_dir: Path = field(default_factory=lambda: REPO_ROOT / ".run" / "kafka")
    fresh: bool = False  # start (not reuse) from empty storage

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self, command: str) -> None:
        env = dict(
            os.environ,
            KAFKA_PORT=str(self.port),
            KAFKA_CONTROLLER_PORT=str(self.controller_port),
            KAFKA_DATA_DIR=str(self.data_dir),
            KAFKA_FRESH="1" if self.fresh else "0",
        )
        subprocess.run(["bash", str(KAFKA_SCRIPT), command], check=True, env=env)

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")


@dataclass
class LocalKafkaCluster:
    """``size`` KRaft nodes of ``deploy/kafka/kafka.sh``'s cluster mode: node i on client
    port ``port + 2(i-1)``, controller port one above; nodes can be killed and restarted."""

    port: int = 29292
    size: int = 3
    data_dir: Path = field(default_factory=lambda: REPO_ROOT / ".run" / "kafka-cluster")
    heap: str = "-Xms128m -Xmx384m"

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{self.port + 2 * i}" for i in range(self.size))

    def _run(self, command: str, *, node: int = 1, fresh: bool = False) -> str:
        env = dict(
            os.environ,
            KAFKA_PORT=str(self.port),
            KAFKA_DATA_DIR=str(self.data_dir),
            KAFKA_CLUSTER_SIZE=str(self.size),
            KAFKA_NODE_ID=str(node),
            KAFKA_HEAP=self.heap,
            KAFKA_FRESH="1" if fresh else "0",
        )
        done = subprocess.run(
            ["bash", str(KAFKA_SCRIPT), command],
            check=True,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        return done.stdout.strip()

    def start(self, attempts: int = 2) -> None:
        """Every node, from empty storage. Tried again once: a port may be held for a
        moment by another program (an outgoing connection's ephemeral port when the ports
        chosen sit in Linux's ephemeral range, 32768-60999: keep them below)."""
        for attempt in range(1, attempts + 1):
            try:
                self._run("start", fresh=True)
                return
            except subprocess.CalledProcessError:
                if attempt == attempts:
                    raise
                self._run("stop")

    def stop(self) -> None:
        self._run("stop")

    def kill(self, node: int) -> None:
        """``kill -9`` of one node."""
        os.kill(int(self._run("pid", node=node)), 9)

    def start_node(self, node: int, attempts: int = 2) -> None:
        """Start one node again from its own data (after :meth:`kill`), tried again once."""
        for attempt in range(1, attempts + 1):
            try:
                self._run("start-node", node=node)
                return
            except subprocess.CalledProcessError:
                if attempt == attempts:
                    raise


@dataclass
class LocalPostgres:
    """The cluster of ``deploy/postgres/pg.sh``; ``database()`` makes a fresh database."""

    admin_url: str = ""

    def start(self) -> None:
        subprocess.run(["bash", str(POSTGRES_SCRIPT), "start"], check=True)
        self.admin_url = subprocess.run(
            ["bash", str(POSTGRES_SCRIPT), "url", "kit_test"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def _asyncpg_dsn(self, url: str) -> str:
        return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)

    @asynccontextmanager
    async def database(self) -> AsyncIterator[str]:
        """A new empty database for one test, dropped afterwards; yields its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(self._asyncpg_dsn(self.admin_url))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            yield make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


@asynccontextmanager
async def serve_app(
    app_package: str, settings: ServiceSettings, *, base_url: str = "http://app"
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Migrate ``settings.database_url``, start the app (lifespan included) and give an
    in-process client for it."""
    await upgrade(app_package, settings.database_url)
    app: FastAPI = importlib.import_module(f"{app_package}.main").create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield app, client


TEST_ISSUER = "http://identity.test"
UNREACHABLE_KAFKA = "127.0.0.1:1"


def new_subject(prefix: str = "acc") -> str:
    """A pseudonymous id of letters only: a hex id now and then holds a digit run shaped
    like a phone number, which the event guard rightly refuses as a subject."""
    return new_id(prefix)


@dataclass
class AppUnderTest:
    """A running app that trusts ``key`` as identity's, with helpers to act as a user,
    staff member or anyone else holding a token, and to read what it is about to publish."""

    app: FastAPI
    client: httpx.AsyncClient
    settings: ServiceSettings
    key: SigningKey

    @property
    def context(self) -> AppContext:
        context: AppContext = self.app.state.context
        return context

    def token(self, subject: str, scopes: Iterable[str], **claims: Any) -> str:
        return mint_token(
            self.key,
            issuer=self.settings.auth_issuer,
            audience=self.settings.auth_audience,
            subject=subject,
            scopes=scopes,
            **claims,
        )

    def headers_of(
        self, subject: str, scopes: Iterable[str] = USER_SCOPES, **claims: Any
    ) -> dict[str, str]:
        return bearer(self.token(subject, scopes, **claims))

    def user(self, **claims: Any) -> tuple[str, dict[str, str]]:
        """A new user's account id and Authorization header."""
        subject = new_subject()
        return subject, self.headers_of(subject, USER_SCOPES, **claims)

    def staff(self, role: str = "privacy_officer") -> tuple[str, dict[str, str]]:
        """A new staff member with ``role`` and their Authorization header."""
        subject = new_subject()
        return subject, self.headers_of(subject, STAFF_ROLE_SCOPES[role], kind="staff")

    def privacy_officer(self) -> dict[str, str]:
        return self.staff("privacy_officer")[1]

    async def outbox_events(self) -> list[Event]:
        return await outbox_events(self.context.database)


@asynccontextmanager
async def app_under_test(
    app_package: str, settings: ServiceSettings
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, SigningKey]]:
    """:func:`serve_app`, trusting a fresh signing key instead of identity's JWKS."""
    key = generate_signing_key()
    async with serve_app(app_package, settings) as (app, client):
        trust_only(app, key)
        yield app, client, key


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def mint_token(
    key: SigningKey,
    *,
    issuer: str,
    audience: str,
    subject: str,
    scopes: Iterable[str],
    kind: str = "user",
    client_type: str = "app",
    ttl_s: int = 600,
    client_id: str | None = None,
    **claims: object,
) -> str:
    """An access token as identity would issue it, signed by ``key`` (a test's own); its
    ``client_id`` is, as identity's, the subject for a server client, else the client type."""
    claims = access_claims(
        issuer=issuer,
        audience=audience,
        subject=subject,
        scopes=scopes,
        ttl_s=ttl_s,
        client_id=client_id or (subject if client_type == "server" else client_type),
        kind=kind,
        client_type=client_type,
        **claims,
    )
    return issue_token(claims, key=key)


def trust_only(app: FastAPI, key: SigningKey) -> None:
    """Make ``app`` verify tokens against ``key`` alone, instead of identity's JWKS."""
    settings = app.state.context.settings
    app.state.token_verifier = TokenVerifier(
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        key_source=static_key_source(KeySet.of(key)),
    )


async def outbox_events(database: Database) -> list[Event]:
    """Every event in ``database``'s outbox, oldest first."""
    async with database.session() as session:
        payloads = await session.scalars(
            select(col(OutboxMessage.payload)).order_by(col(OutboxMessage.seq))
        )
        return [Event.model_validate_json(payload) for payload in payloads]


async def eventually(
    condition: Callable[[], Awaitable[bool]], *, timeout_s: float, what: str
) -> None:
    """Wait until ``condition()`` holds, polling; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def on_loopback_port(app: Any, **config: Any) -> AsyncIterator[int]:
    """``app`` served by uvicorn on a free loopback port (``config``: more of
    ``uvicorn.Config``, TLS say), stopped on exit; yields the port."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", **config)
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):  # bounded: 5 s
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        await task


class TopicSizes:
    """How many records each topic holds (the sum of its partitions' end offsets)."""

    def __init__(self, bootstrap_servers: str) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers)

    async def __aenter__(self) -> TopicSizes:
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._consumer.stop()

    async def size(self, topic: str) -> int:
        partitions = self._consumer.partitions_for_topic(topic)
        if not partitions:
            await self._consumer._client.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(topic) or set()
        offsets = await self._consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return sum(offsets.values())


async def read_events(
    bootstrap_servers: str, topic: str, *, count: int, timeout_s: float = 60.0
) -> list[Event]:
    """Read ``topic`` from its start until ``count`` distinct event ids arrived (or fail on
    timeout); duplicates that arrived meanwhile are returned too.

    Events come back in partition order, one partition after another, as Kafka keeps them.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions: set[int] | None = None
        deadline = time.monotonic() + timeout_s
        while not partitions:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"topic {topic} never appeared")
                await consumer._client.force_metadata_update()
                await asyncio.sleep(0.2)
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        await consumer.seek_to_beginning()
        events: list[Event] = []
        seen: set[str] = set()
        while len(seen) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(seen)} of {count} events arrived on {topic}")
            batches = await consumer.getmany(timeout_ms=int(min(remaining, 1.0) * 1000))
            for records in batches.values():
                for record in records:
                    events.append(Event.from_json_bytes(record.value))
                    seen.add(events[-1].id)
        return events
    finally:
        await consumer.stop()


async def read_records(bootstrap_servers: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record ``topic`` holds now, from its start to its end offsets (none if the
    topic does not exist)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records += batch
        return records
    finally:
        await consumer.stop()


async def topic_events(bootstrap_servers: str, topic: str) -> list[Event]:
    """Every event ``topic`` holds now (the outbox relay deletes what Kafka acknowledged,
    so a test reads what an app published here rather than in its outbox)."""
    return [Event.from_json_bytes(r.value) for r in await read_records(bootstrap_servers, topic)]


def purpose_ceased_event(purpose: str, effective: date) -> Event:
    """The privacy center's ``purpose.ceased`` event, as a participant service receives it."""
    return new_event(
        source="/consent",
        type="com.signature.consent.purpose.ceased.v1",
        subject="ces_abcdefghijklmnopqrstuvwx",
        purpose=purpose,
        data=contracts.PurposeCeased(
            cessation_id="ces_abcdefghijklmnopqrstuvwx",
            purpose=purpose,
            effective_date=effective.isoformat(),
            deletion_due=effective.isoformat(),
        ),
    )


async def delete_topics(bootstrap_servers: str, prefix: str) -> None:
    """Delete every topic whose name starts with ``prefix`` (a run's own topics)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        ours = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


@dataclass
class StandInProvider:
    """The stand-in payment provider (``deploy/payment_provider``) as its own process."""

    url: str
    key_file: Path
    process: subprocess.Popen[bytes]

    def key_pem(self) -> str:
        """Its private key: tests sign notifications of their own with it."""
        return self.key_file.read_text()


def _start_provider(directory: Path, port: int, retry_base_s: float) -> subprocess.Popen[bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PAYMENT_PROVIDER_KEY_FILE": str(directory / "provider-key.pem"),
        "PAYMENT_PROVIDER_SHOP_KEY_FILE": str(directory / "shop-public-key.pem"),
        "PAYMENT_PROVIDER_RETRY_BASE_S": str(retry_base_s),
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "deploy.payment_provider.main:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]
    with (directory / "payment-provider.log").open("ab") as log:
        return subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )


@asynccontextmanager
async def standin_provider(
    directory: Path, *, port: int, retry_base_s: float = 0.2
) -> AsyncIterator[StandInProvider]:
    """Start the stand-in payment provider on ``port`` with its key and log in
    ``directory``; wait until it answers; stop it afterwards."""
    process = _start_provider(directory, port, retry_base_s)
    key_file = directory / "provider-key.pem"
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=2.0, trust_env=False) as client:
            for _ in range(200):  # bounded: 20 s
                if process.poll() is not None:
                    raise RuntimeError("the stand-in payment provider exited at start")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the stand-in payment provider did not start")
        yield StandInProvider(url=url, key_file=key_file, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
