"""The whole suite at speed (issue 22, items 1-2): real requests through the gateway and
straight to orders, against a minimal app doing the same work, with the CPU every process
of the suite spent per request.

``python -m bench.fullstack`` starts the suite as production runs it (the four services
and the gateway, each its own uvicorn process on its own fresh PostgreSQL database, the
real broker, tokens issued by identity: :func:`tests.e2e.suite.running_suite`), then makes
what it measures through the gateway, as clients would: ``USERS`` users registered, logged
in and agreed to the policy, each with ``ORDERS_EACH`` orders placed (4 encrypted personal
fields an order: 20 fields decrypted by one owner read); a courier partner assigned to
``COURIER_ORDERS`` paid orders.

Then, each under wrk for ``BENCH_FULLSTACK_SECONDS`` (3 by default; longer runs: set it)
after a one-second warm-up, each user with their own token in turn:

- owner read, ``GET /orders/orders`` (the user's orders, newest first), through the gateway
  and straight to orders, ``-c8`` and ``-c32``;
- the anchor: :func:`anchor_app`, a minimal FastAPI app on one uvicorn worker doing the
  owner read's work on the same stack: python-jose ES256 verification (``kit.auth``, no
  token cache), the user's data key read and unwrapped with AES-GCM, 20 fields decrypted,
  two queries over asyncpg, no ORM;
- courier read, ``GET /orders/partner/orders/{id}`` (the privacy waybill), through the
  gateway and straight to orders;
- order placement, ``POST /orders/orders``, through the gateway and straight to orders,
  against the minimal insert app (``POST /orders`` of :func:`anchor_app`: the token
  verified, the body validated by the same :class:`OrderCreate`, the goods looked up, the
  data key unwrapped, the 6 personal fields encrypted, the order and its lines inserted in
  one transaction, asyncpg, no ORM).

For every run: requests/s, p50, p99, and core-milliseconds per request of every process:
each app (user + system time from ``/proc``), the broker (found by its listening port) and
the PostgreSQL backends serving the suite's databases (``pg_stat_activity``; the server's
own writer and checkpointer are not counted). Each process's idle rate, measured for
``IDLE_S`` before the runs (relay polls, consumers, the broker's own work, or other work on
a shared broker and server), is taken off what it spent during a run, so that a slow run
does not charge its few requests the background.

Goals (issue 22, item 2): owner read through the gateway >= 0.5 of the anchor; placing an
order >= 0.3 of the minimal insert app; <= 3 core-ms per owner read and 6 per order across
all processes; p99 at c32 within 5x of p50.

All of it runs twice (``--backends``): the suite on PostgreSQL, then on SQLite files
(``make run``'s default), each pass with its own users and its own anchor run on
PostgreSQL; a SQLite row names its ratio to the PostgreSQL row beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final

import asyncpg
import uvicorn
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import FastAPI, Header, HTTPException
from sqlalchemy.engine import make_url

from bench.http import WrkResult, cpu_seconds, free_port, process, wait_until_up, wrk
from bench.report import Row
from kit.auth import USER_SCOPES, KeySet, SigningKey, generate_signing_key, verify_token
from kit.ids import new_id
from kit.testing import TEST_ISSUER, LocalKafka, LocalPostgres, mint_token
from services.orders.orders.schemas import OrderCreate
from tests.e2e.suite import Person, Suite, running_suite

SECONDS_ENV: Final = "BENCH_FULLSTACK_SECONDS"
USERS: Final = 64
ORDERS_EACH: Final = 5
COURIER_ORDERS: Final = 16
READ_GOAL: Final = 0.5
PLACE_GOAL: Final = 0.3
READ_CORE_MS_GOAL: Final = 3.0
PLACE_CORE_MS_GOAL: Final = 6.0
TAIL_GOAL: Final = 5.0
WRK_TIMEOUT_S: Final = 30.0
IDLE_S: Final = 3.0
ANCHOR_DATABASE_ENV: Final = "BENCH_ANCHOR_DATABASE_URL"
ANCHOR_KEY_ENV: Final = "BENCH_ANCHOR_PUBLIC_JWK"
ANCHOR_MASTER_ENV: Final = "BENCH_ANCHOR_MASTER_KEY"
ANCHOR_AUDIENCE: Final = "signature-api"
ENCRYPTED: Final = ("consignee_name", "consignee_phone", "address_region", "address_detail")

GET_LUA = """\
local tokens = {{ {tokens} }}
local paths = {{ {paths} }}
local n = 0
request = function()
    n = n + 1
    return wrk.format("GET", paths[n % #paths + 1], {{
        ["Authorization"] = "Bearer " .. tokens[n % #tokens + 1],
    }})
end
"""

POST_LUA = """\
local tokens = {{ {tokens} }}
local bodies = {{ {bodies} }}
local n = 0
request = function()
    n = n + 1
    local i = n % #tokens + 1
    return wrk.format("POST", "{path}", {{
        ["Content-Type"] = "application/json",
        ["Authorization"] = "Bearer " .. tokens[i],
    }}, bodies[i])
end
"""


def order_body(person: Person, goods_id: str) -> dict[str, Any]:
    """A fuller order than the least one: two of the goods, a postal code, a second phone."""
    body = person.order_body(goods_id, quantity=2)
    body["address"]["postal_code"] = "310012"
    body["extra_phones"] = ["0571-88886666"]
    return body


# --------------------------------------------------------------------------- the anchor

ANCHOR_SCHEMA: Final = """
CREATE TABLE subject_key (subject text PRIMARY KEY, wrapped bytea NOT NULL);
CREATE TABLE goods (id text PRIMARY KEY, name text NOT NULL, price numeric(12, 2) NOT NULL);
CREATE TABLE orders (
    id text PRIMARY KEY, buyer_id text NOT NULL, status text NOT NULL,
    currency text NOT NULL, subtotal numeric(12, 2) NOT NULL,
    amount_payable numeric(12, 2) NOT NULL, created_at timestamptz NOT NULL,
    consignee_name text, consignee_phone text, address_region text, address_detail text,
    postal_code text, extra_phones text
);
CREATE INDEX orders_by_buyer ON orders (buyer_id, created_at DESC, id DESC);
CREATE TABLE order_line (
    order_id text NOT NULL REFERENCES orders (id), position int NOT NULL,
    goods_id text NOT NULL, goods_name text NOT NULL, quantity int NOT NULL,
    unit_price numeric(12, 2) NOT NULL, line_total numeric(12, 2) NOT NULL,
    PRIMARY KEY (order_id, position)
);
"""


def _seal(key: bytes, plain: bytes, aad: bytes) -> str:
    nonce = secrets.token_bytes(12)
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, plain, aad)).decode()


def _open(key: bytes, token: str, aad: bytes) -> bytes:
    raw = base64.b64decode(token)
    return AESGCM(key).decrypt(raw[:12], raw[12:], aad)


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def anchor_app() -> FastAPI:
    """The minimal app (``uvicorn --factory bench.fullstack:anchor_app``): the owner read's
    work (``GET /orders``) and the placement's (``POST /orders``), nothing else."""
    keys = KeySet([json.loads(os.environ[ANCHOR_KEY_ENV])])
    master = base64.b64decode(os.environ[ANCHOR_MASTER_ENV])
    pools: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pools["db"] = await asyncpg.create_pool(
            _dsn(os.environ[ANCHOR_DATABASE_ENV]), min_size=10, max_size=10
        )
        try:
            yield
        finally:
            await pools["db"].close()

    app = FastAPI(lifespan=lifespan)

    def subject_of(authorization: str) -> str:
        try:
            claims = verify_token(
                authorization.removeprefix("Bearer "),
                keys=keys,
                issuer=TEST_ISSUER,
                audience=ANCHOR_AUDIENCE,
            )
        except Exception as exc:
            raise HTTPException(401) from exc
        subject: str = claims["sub"]
        return subject

    async def data_key(connection: asyncpg.Connection, subject: str) -> bytes:
        wrapped = await connection.fetchval(
            "SELECT wrapped FROM subject_key WHERE subject = $1", subject
        )
        if wrapped is None:
            raise HTTPException(404)
        return AESGCM(master).decrypt(wrapped[:12], wrapped[12:], subject.encode())

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/orders")
    async def owner_read(authorization: Annotated[str, Header()]) -> dict[str, Any]:
        subject = subject_of(authorization)
        async with pools["db"].acquire() as connection:
            key = await data_key(connection, subject)
            rows = await connection.fetch(
                "SELECT id, status, currency, subtotal, amount_payable, created_at, "
                "consignee_name, consignee_phone, address_region, address_detail "
                "FROM orders WHERE buyer_id = $1 ORDER BY created_at DESC, id DESC LIMIT 21",
                subject,
            )
        items = []
        for row in rows[:20]:
            item: dict[str, Any] = {
                "order_id": row["id"],
                "status": row["status"],
                "currency": row["currency"],
                "subtotal": str(row["subtotal"]),
                "amount_payable": str(row["amount_payable"]),
                "created_at": row["created_at"].isoformat(),
            }
            for name in ENCRYPTED:
                item[name] = _open(key, row[name], f"orders.order.{name}".encode()).decode()
            items.append(item)
        return {"items": items, "next_cursor": None}

    @app.post("/orders", status_code=201)
    async def place(body: OrderCreate, authorization: Annotated[str, Header()]) -> dict[str, str]:
        subject = subject_of(authorization)
        async with pools["db"].acquire() as connection, connection.transaction():
            key = await data_key(connection, subject)
            goods = {
                row["id"]: row
                for row in await connection.fetch(
                    "SELECT id, name, price FROM goods WHERE id = ANY($1)",
                    [item.goods_id for item in body.items],
                )
            }
            if len(goods) != len({item.goods_id for item in body.items}):
                raise HTTPException(422)
            totals = [goods[item.goods_id]["price"] * item.quantity for item in body.items]
            subtotal = sum(totals, Decimal(0))
            address = body.address
            plain = {
                "consignee_name": body.consignee_name,
                "consignee_phone": body.consignee_phone,
                "address_region": f"{address.province} {address.city} {address.district}",
                "address_detail": address.detail,
                "postal_code": address.postal_code or "",
                "extra_phones": json.dumps(body.extra_phones or [], ensure_ascii=False),
            }
            sealed = {
                name: _seal(key, str(value).encode(), f"orders.order.{name}".encode())
                for name, value in plain.items()
            }
            order_id = new_id("ord")
            await connection.execute(
                "INSERT INTO orders (id, buyer_id, status, currency, subtotal, amount_payable, "
                "created_at, consignee_name, consignee_phone, address_region, address_detail, "
                "postal_code, extra_phones) "
                "VALUES ($1, $2, 'placed', 'CNY', $3, $3, $4, $5, $6, $7, $8, $9, $10)",
                order_id,
                subject,
                subtotal,
                datetime.now(UTC),
                *sealed.values(),
            )
            await connection.executemany(
                "INSERT INTO order_line VALUES ($1, $2, $3, $4, $5, $6, $7)",
                [
                    (
                        order_id,
                        position,
                        item.goods_id,
                        goods[item.goods_id]["name"],
                        item.quantity,
                        goods[item.goods_id]["price"],
                        total,
                    )
                    for position, (item, total) in enumerate(zip(body.items, totals, strict=True))
                ],
            )
        return {"order_id": order_id}

    return app


# --------------------------------------------------------------------------- CPU per process


def listener_pid(port: int) -> int | None:
    """The process listening on TCP ``port`` of 127.0.0.1 (the broker), from ``/proc``."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(entry.name)
    return None


def _own_cpu(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / ticks


@dataclass
class Meter:
    """CPU seconds of the suite's processes, the broker and the server's backends."""

    apps: dict[str, int]  # name -> pid
    broker: int | None
    admin_dsn: str
    databases: list[str]
    #: each process's CPU seconds per second while the suite is idle (relay polls,
    #: consumers, the broker's own work, other work on a shared broker), taken off a run's
    #: CPU so that a slow run does not charge its requests the background
    idle: dict[str, float] = field(default_factory=dict)

    async def measure_idle(self, seconds: float) -> None:
        before, started = await self.sample(), time.perf_counter()
        await asyncio.sleep(seconds)
        after, elapsed = await self.sample(), time.perf_counter() - started
        self.idle = {name: used / elapsed for name, used in spent(before, after).items()}

    async def backends(self) -> list[int]:
        connection = await asyncpg.connect(self.admin_dsn)
        try:
            rows = await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = ANY($1)", self.databases
            )
        finally:
            await connection.close()
        return [row["pid"] for row in rows]

    async def sample(self) -> dict[str, float | dict[int, float]]:
        out: dict[str, float | dict[int, float]] = {}
        for name, pid in self.apps.items():
            with contextlib.suppress(OSError):
                out[name] = cpu_seconds(pid)
        if self.broker is not None:
            with contextlib.suppress(OSError):
                out["kafka"] = _own_cpu(self.broker)
        backends: dict[int, float] = {}
        for pid in await self.backends():
            with contextlib.suppress(OSError):
                backends[pid] = _own_cpu(pid)
        out["postgres"] = backends
        return out


def spent(
    before: Mapping[str, float | dict[int, float]], after: Mapping[str, float | dict[int, float]]
) -> dict[str, float]:
    """CPU seconds per process between two samples (a backend that started meanwhile counts
    from zero; one that ended meanwhile is lost: pools keep theirs)."""
    out: dict[str, float] = {}
    for name, value in after.items():
        if isinstance(value, dict):
            old = before.get(name)
            old_backends = old if isinstance(old, dict) else {}
            out[name] = sum(cpu - old_backends.get(pid, 0.0) for pid, cpu in value.items())
        else:
            old_value = before.get(name, 0.0)
            out[name] = value - (old_value if isinstance(old_value, float) else 0.0)
    return out


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    users: list[tuple[Person, str, str]]  # person, account id, access token
    goods_id: str
    courier_token: str
    courier_orders: list[str]
    anchor_tokens: list[str] = field(default_factory=list)


async def _user(suite: Suite, goods_id: str) -> tuple[Person, str, str]:
    for attempt in range(5):  # a busy machine may time a registration out: a new person
        person = Person.new()
        try:
            account_id, headers = await suite.register(person)
            break
        except AssertionError:
            if attempt == 4:
                raise
            await asyncio.sleep(2 * (attempt + 1))
    for _ in range(ORDERS_EACH):
        await suite.call(
            "POST",
            "/orders/orders",
            headers=headers,
            json=order_body(person, goods_id),
            expect=201,
        )
    return person, account_id, headers["Authorization"].removeprefix("Bearer ")


async def make_world(suite: Suite, users: int) -> World:
    """Users, their orders and a courier's, made through the gateway as clients would."""
    goods = await suite.call(
        "POST",
        "/orders/admin/goods",
        headers=suite.admin,
        json={"name": "Longjing tea 250 g", "price": "59.90"},
        expect=201,
    )
    goods_id: str = goods["goods_id"]
    gate = asyncio.Semaphore(2)  # argon2 at identity: 2 cores

    async def one() -> tuple[Person, str, str]:
        async with gate:
            return await _user(suite, goods_id)

    made = await asyncio.gather(*(one() for _ in range(users)))
    courier, courier_headers = await suite.partner("logistics", "logistics.delivery")
    courier_orders: list[str] = []
    for person, _, token in made[:COURIER_ORDERS]:
        headers = {"Authorization": f"Bearer {token}"}
        placed = await suite.call(
            "POST",
            "/orders/orders",
            headers=headers,
            json=order_body(person, goods_id),
            expect=201,
        )
        await suite.pay(headers, placed["order_id"])
        await suite.call(
            "PUT",
            f"/orders/admin/orders/{placed['order_id']}/partners",
            headers=suite.admin,
            json={"logistics_partner_id": courier},
        )
        courier_orders.append(placed["order_id"])
    return World(
        list(made),
        goods_id,
        courier_headers["Authorization"].removeprefix("Bearer "),
        courier_orders,
    )


async def fill_anchor(url: str, world: World, master: bytes, key: SigningKey) -> None:
    """The anchor's database: the same users, each with a data key and ``ORDERS_EACH``
    orders (4 personal fields sealed under it), and its own tokens for them."""
    connection = await asyncpg.connect(_dsn(url))
    try:
        await connection.execute(ANCHOR_SCHEMA)
        await connection.execute(
            "INSERT INTO goods VALUES ($1, 'Longjing tea 250 g', 59.90)", world.goods_id
        )
        for person, account_id, _ in world.users:
            data_key = secrets.token_bytes(32)
            nonce = secrets.token_bytes(12)
            wrapped = nonce + AESGCM(master).encrypt(nonce, data_key, account_id.encode())
            await connection.execute("INSERT INTO subject_key VALUES ($1, $2)", account_id, wrapped)
            body = order_body(person, world.goods_id)
            address = body["address"]
            values = {
                "consignee_name": person.name,
                "consignee_phone": person.phone,
                "address_region": f"{address['province']} {address['city']} {address['district']}",
                "address_detail": person.address_detail,
            }
            for _ in range(ORDERS_EACH):
                await connection.execute(
                    "INSERT INTO orders (id, buyer_id, status, currency, subtotal, "
                    "amount_payable, created_at, consignee_name, consignee_phone, "
                    "address_region, address_detail) "
                    "VALUES ($1, $2, 'placed', 'CNY', 119.80, 119.80, $3, $4, $5, $6, $7)",
                    new_id("ord"),
                    account_id,
                    datetime.now(UTC),
                    *(
                        _seal(data_key, v.encode(), f"orders.order.{n}".encode())
                        for n, v in values.items()
                    ),
                )
            world.anchor_tokens.append(
                mint_token(
                    key,
                    issuer=TEST_ISSUER,
                    audience=ANCHOR_AUDIENCE,
                    subject=account_id,
                    scopes=list(USER_SCOPES),
                    ttl_s=3600,
                )
            )
    finally:
        await connection.close()


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Run:
    backend: str  # "PostgreSQL" or "SQLite": the suite's databases
    label: str
    connections: int
    result: WrkResult
    cpu: dict[str, float]  # process -> core-ms per request

    @property
    def core_ms(self) -> float:
        return sum(self.cpu.values())


def _quoted(values: Sequence[str]) -> str:
    return ", ".join(f'"{value}"' for value in values)


def get_script(scratch: Path, name: str, tokens: Sequence[str], paths: Sequence[str]) -> str:
    path = scratch / f"{name}.lua"
    path.write_text(GET_LUA.format(tokens=_quoted(tokens), paths=_quoted(paths)))
    return str(path)


def post_script(
    scratch: Path,
    name: str,
    tokens: Sequence[str],
    url_path: str,
    bodies: Sequence[Mapping[str, Any]],
) -> str:
    """A wrk script posting, in turn, each token's own body (``bodies[i]`` with
    ``tokens[i]``): each user orders to their own name, phone and address, as users do
    (one phone on many accounts' orders is what the ``shared_phone`` fraud rule flags,
    every account again at every order)."""
    path = scratch / f"{name}.lua"
    path.write_text(
        POST_LUA.format(
            tokens=_quoted(tokens),
            path=url_path,
            bodies=", ".join(f"[==[{json.dumps(b, ensure_ascii=False)}]==]" for b in bodies),
        ),
        encoding="utf-8",
    )
    return str(path)


async def measure_one(
    meter: Meter,
    label: str,
    url: str,
    script: str,
    *,
    connections: int,
    seconds: float,
    backend: str = "PostgreSQL",
) -> Run:
    await asyncio.to_thread(
        wrk,
        url,
        connections=connections,
        seconds=1,
        headers={},
        script=script,
        timeout_s=WRK_TIMEOUT_S,
    )
    before, started = await meter.sample(), time.perf_counter()
    result = await asyncio.to_thread(
        wrk,
        url,
        connections=connections,
        seconds=seconds,
        headers={},
        script=script,
        timeout_s=WRK_TIMEOUT_S,
    )
    after, elapsed = await meter.sample(), time.perf_counter() - started
    requests = max(result.rps * seconds, 1.0)
    cpu = {
        name: max(used - meter.idle.get(name, 0.0) * elapsed, 0.0) * 1000 / requests
        for name, used in spent(before, after).items()
    }
    run = Run(backend, label, connections, result, cpu)
    print(
        f"   {backend}, {label} c{connections}: {result.rps:,.0f} req/s, "
        f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
        f"{run.core_ms:.1f} core-ms/req, errors {result.errors}",
        flush=True,
    )
    return run


@contextlib.contextmanager
def profiling(
    pids: Mapping[str, int], out: Path | None, name: str, seconds: float
) -> Iterator[None]:
    """py-spy on each of ``pids`` while the block runs (``--profile``): a flame graph (SVG)
    and raw samples per process under ``out``."""
    if out is None:
        yield
        return
    spy = str(Path(sys.executable).with_name("py-spy"))
    children = []
    for app, pid in pids.items():
        for kind, suffix in (("flamegraph", "svg"), ("raw", "txt")):
            target = out / f"{name}.{app}.{suffix}"
            children.append(
                subprocess.Popen(
                    [
                        spy,
                        "record",
                        "-p",
                        str(pid),
                        "-d",
                        str(round(seconds)),
                        "-r",
                        "200",
                        "-f",
                        kind,
                        "-o",
                        str(target),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    try:
        yield
    finally:
        for child in children:
            child.wait()
        for app in pids:  # the title holds py-spy's command line: paths of this machine
            with contextlib.suppress(OSError):
                svg = out / f"{name}.{app}.svg"
                svg.write_text(
                    re.sub(
                        r'(<text id="title"[^>]*>)[^<]*(</text>)',
                        rf"\g<1>{app} during {name} (py-spy, 200 Hz, {round(seconds)} s)\g<2>",
                        svg.read_text(encoding="utf-8"),
                        count=1,
                    ),
                    encoding="utf-8",
                )


BACKENDS: Final = ("PostgreSQL", "SQLite")


async def measure(
    postgres: LocalPostgres,
    bootstrap: str,
    *,
    users: int,
    seconds: float,
    connections: Sequence[int],
    profile: Path | None,
    only: Sequence[str] = (),
    backends: Sequence[str] = BACKENDS,
) -> list[Run]:
    """Every run on each of ``backends`` in turn: the suite on PostgreSQL databases, then on
    SQLite files (``make run``'s default); the anchor runs on PostgreSQL in each pass, so
    each backend's ratios compare figures of one pass."""
    runs: list[Run] = []
    for backend in backends:
        print(f"   the suite on {backend}", flush=True)
        runs += await measure_backend(
            postgres,
            bootstrap,
            backend=backend,
            users=users,
            seconds=seconds,
            connections=connections,
            profile=profile,
            only=only,
        )
    return runs


async def measure_backend(
    postgres: LocalPostgres,
    bootstrap: str,
    *,
    backend: str,
    users: int,
    seconds: float,
    connections: Sequence[int],
    profile: Path | None,
    only: Sequence[str] = (),
) -> list[Run]:
    runs: list[Run] = []
    sqlite = backend == "SQLite"
    with tempfile.TemporaryDirectory(prefix="bench-fullstack-") as scratch_name:
        scratch = Path(scratch_name)
        async with (
            running_suite(
                postgres=postgres, bootstrap_servers=bootstrap, log_dir=scratch, sqlite=sqlite
            ) as suite,
            postgres.database() as anchor_url,
        ):
            print(f"   suite up; making {users} users with {ORDERS_EACH} orders each", flush=True)
            started = time.perf_counter()
            world = await make_world(suite, users)
            key, master = generate_signing_key(), secrets.token_bytes(32)
            await fill_anchor(anchor_url, world, master, key)
            print(f"   made in {time.perf_counter() - started:.0f} s", flush=True)
            pids = {name: p.process.pid for name, p in suite.processes.items() if p.process}
            port = free_port()
            env = {
                **os.environ,
                ANCHOR_DATABASE_ENV: anchor_url,
                ANCHOR_KEY_ENV: json.dumps(key.public_jwk()),
                ANCHOR_MASTER_ENV: base64.b64encode(master).decode(),
            }
            command = [sys.executable, "-m", "bench.fullstack", "serve", "--port", str(port)]
            with process(command, scratch / "anchor.log", env) as anchor:
                anchor_base = f"http://127.0.0.1:{port}"
                await asyncio.to_thread(wait_until_up, f"{anchor_base}/healthz", {}, 60)
                meter = Meter(
                    apps={**pids, "anchor": anchor.pid},
                    broker=listener_pid(int(bootstrap.rsplit(":", 1)[1])),
                    admin_dsn=_dsn(postgres.admin_url),
                    databases=[
                        make_url(u).database or ""
                        for u in (*suite.database_urls.values(), anchor_url)
                        if not u.startswith("sqlite")
                    ],
                )
                await meter.measure_idle(IDLE_S)
                print(
                    "   idle CPU, core-ms per s: "
                    + ", ".join(f"{n} {v * 1000:.0f}" for n, v in meter.idle.items()),
                    flush=True,
                )
                tokens = [token for _, _, token in world.users]
                # readers: the users with exactly ORDERS_EACH orders (not the couriers')
                readers = tokens[COURIER_ORDERS:] or tokens
                anchor_readers = world.anchor_tokens[COURIER_ORDERS:] or world.anchor_tokens
                gateway, orders = suite.gateway_url, suite.processes["orders"].url
                read_gw = get_script(scratch, "read-gw", readers, ["/orders/orders"])
                read_direct = get_script(scratch, "read-direct", readers, ["/orders"])
                read_anchor = get_script(scratch, "read-anchor", anchor_readers, ["/orders"])
                waybills = [f"/partner/orders/{o}" for o in world.courier_orders]
                courier_gw = get_script(
                    scratch, "courier-gw", [world.courier_token], [f"/orders{p}" for p in waybills]
                )
                courier_direct = get_script(
                    scratch, "courier-direct", [world.courier_token], waybills
                )
                bodies = [order_body(person, world.goods_id) for person, _, _ in world.users]
                place_gw = post_script(scratch, "place-gw", tokens, "/orders/orders", bodies)
                place_direct = post_script(scratch, "place-direct", tokens, "/orders", bodies)
                place_anchor = post_script(
                    scratch, "place-anchor", world.anchor_tokens, "/orders", bodies
                )
                plan = [
                    ("owner read, anchor", anchor_base, read_anchor),
                    ("owner read, gateway", gateway, read_gw),
                    ("owner read, orders", orders, read_direct),
                    ("courier read, gateway", gateway, courier_gw),
                    ("courier read, orders", orders, courier_direct),
                    ("placement, insert app", anchor_base, place_anchor),
                    ("placement, gateway", gateway, place_gw),
                    ("placement, orders", orders, place_direct),
                ]
                profiled = {"owner read, gateway", "placement, gateway"}
                for label, base, script in plan:
                    if only and not any(word in label for word in only):
                        continue
                    for c in connections:
                        spied = {n: pids[n] for n in ("gateway", "orders", "consent")}
                        name = label.replace(", ", "-").replace(" ", "-") + f"-c{c}"
                        if sqlite:
                            name += "-sqlite"
                        wanted = profile if label in profiled and c == max(connections) else None
                        with profiling(spied, wanted, name, seconds):
                            runs.append(
                                await measure_one(
                                    meter,
                                    label,
                                    base,
                                    script,
                                    connections=c,
                                    seconds=seconds,
                                    backend=backend,
                                )
                            )
    return runs


# --------------------------------------------------------------------------- the rows


def _cpu_text(run: Run) -> str:
    parts = sorted(run.cpu.items(), key=lambda item: -item[1])
    return ", ".join(f"{name} {ms:.2f}" for name, ms in parts if ms >= 0.005)


def rows(runs: Sequence[Run]) -> list[Row]:
    """Each backend's rows; a SQLite row also says how it compares with PostgreSQL's."""
    out: list[Row] = []
    postgres = {(r.label, r.connections): r for r in runs if r.backend == "PostgreSQL"}
    for backend in dict.fromkeys(r.backend for r in runs):
        mine = [r for r in runs if r.backend == backend]
        out += _backend_rows(backend, mine, postgres if backend != "PostgreSQL" else {})
    return out


def _versus(run: Run, other: Run | None) -> str:
    if other is None:
        return ""
    return (
        f"; x{run.result.rps / other.result.rps:.2f} of PostgreSQL's req/s, "
        f"x{run.core_ms / other.core_ms:.2f} its core-ms"
        if other.result.rps and other.core_ms
        else ""
    )


def _backend_rows(
    backend: str, runs: Sequence[Run], postgres: Mapping[tuple[str, int], Run]
) -> list[Row]:
    by = {(r.label, r.connections): r for r in runs}
    top = max(r.connections for r in runs)
    out: list[Row] = []
    for label, anchor_label, goal, core_goal in (
        ("owner read", "owner read, anchor", READ_GOAL, READ_CORE_MS_GOAL),
        ("courier read", "owner read, anchor", 0.0, READ_CORE_MS_GOAL),
        ("placement", "placement, insert app", PLACE_GOAL, PLACE_CORE_MS_GOAL),
    ):
        for c in sorted({r.connections for r in runs}):
            anchor = by.get((anchor_label, c))
            if anchor is None:
                continue
            if label != "courier read":
                out.append(
                    Row(
                        "9",
                        f"full stack, {anchor_label} (PostgreSQL), {backend} pass, wrk -c{c}",
                        f"{anchor.result.rps:,.0f} req/s, p50 {anchor.result.p50_ms:.1f} / p99 "
                        f"{anchor.result.p99_ms:.1f} ms",
                        f"{anchor.core_ms:.2f} core-ms/req ({_cpu_text(anchor)})",
                    )
                )
            for where in ("gateway", "orders"):
                run = by.get((f"{label}, {where}", c))
                if run is None:
                    continue
                ratio = run.result.rps / anchor.result.rps
                via = "through the gateway" if where == "gateway" else "straight to orders"
                checks = [run.core_ms <= core_goal]
                goal_text = f"<= {core_goal:.0f} core-ms"
                if goal and where == "gateway":
                    checks.append(ratio >= goal)
                    goal_text = f">= {goal} of {anchor_label.split(', ')[1]}; " + goal_text
                if c == top:
                    checks.append(run.result.p99_ms <= TAIL_GOAL * run.result.p50_ms)
                    goal_text += f"; p99 <= {TAIL_GOAL:.0f}x p50"
                out.append(
                    Row(
                        "9",
                        f"full stack, {label} {via}, {backend}, wrk -c{c}",
                        f"{run.result.rps:,.0f} req/s, p50 {run.result.p50_ms:.1f} / p99 "
                        f"{run.result.p99_ms:.1f} ms; {run.core_ms:.2f} core-ms/req "
                        f"({_cpu_text(run)})",
                        f"{ratio:.2f} of {anchor_label.split(', ')[1]}"
                        + _versus(run, postgres.get((run.label, c))),
                        goal_text,
                        all(checks),
                    )
                )
                if run.result.errors:
                    out.append(
                        Row(
                            "9",
                            f"{label} {via}, {backend}, -c{c}: wrk errors or non-2xx",
                            f"{run.result.errors:,}",
                            "",
                            "0",
                            False,
                        )
                    )
    return out


def seconds_default() -> float:
    return float(os.environ.get(SECONDS_ENV, "3"))


def run(
    *,
    bootstrap: str = "",
    postgres_admin_url: str = "",
    users: int = USERS,
    seconds: float | None = None,
    connections: Sequence[int] = (8, 32),
    profile: Path | None = None,
    only: Sequence[str] = (),
    backends: Sequence[str] = BACKENDS,
) -> list[Row]:
    if not bootstrap:
        kafka = LocalKafka()
        kafka.start()
        bootstrap = kafka.bootstrap_servers
    postgres = LocalPostgres(admin_url=postgres_admin_url)
    if not postgres_admin_url:
        postgres.start()
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    runs = asyncio.run(
        measure(
            postgres,
            bootstrap,
            users=users,
            seconds=seconds or seconds_default(),
            connections=connections,
            profile=profile,
            only=only,
            backends=backends,
        )
    )
    return rows(runs)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fullstack")
    commands = parser.add_subparsers(dest="command")
    server = commands.add_parser("serve", help="run the anchor app (used by the benchmark)")
    server.add_argument("--port", type=int, required=True)
    parser.add_argument("--bootstrap", default="", help="a running broker (default: make kafka's)")
    parser.add_argument(
        "--postgres-admin-url", default="", help="a running server (default: make postgres's)"
    )
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--seconds", type=float, default=None, help=f"per run ({SECONDS_ENV})")
    parser.add_argument("--connections", default="8,32", help="wrk -c values, comma-separated")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy flame graphs of gateway, orders and consent here",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="only the runs whose label holds this word (repeatable; a row needs its anchor)",
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="the suite's databases, in turn: PostgreSQL, SQLite or both (comma-separated)",
    )
    args = parser.parse_args()
    if args.command == "serve":
        uvicorn.run(
            "bench.fullstack:anchor_app",
            factory=True,
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            access_log=False,
        )
        return
    for row in run(
        bootstrap=args.bootstrap,
        postgres_admin_url=args.postgres_admin_url,
        users=args.users,
        seconds=args.seconds,
        connections=[int(c) for c in args.connections.split(",")],
        profile=args.profile,
        only=args.only,
        backends=[b for b in BACKENDS if b.lower() in args.backends.lower().split(",")],
    ):
        print(
            " | ".join(
                (
                    row.section,
                    row.what,
                    row.figure,
                    row.ratio,
                    row.goal,
                    "" if row.met is None else ("met" if row.met else "NOT met"),
                )
            )
        )


if __name__ == "__main__":
    main()
