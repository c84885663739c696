"""The whole suite as it runs in production, for end-to-end tests: the four services and the
gateway as separate uvicorn processes, each on its own fresh PostgreSQL database, all on the
real test broker under one topic prefix, tokens issued by identity and checked by everyone
against its JWKS. Tests talk to the gateway only, as apps and partners do.

- :func:`running_suite` migrates the five databases, registers the internal service clients
  (consent's exports, orders' corrections, transfer's order fetches) and the first
  administrator with identity's command line, starts the processes and waits until every
  ``/readyz`` answers; then starts the stand-in payment provider (its own process, its log
  beside the others) and sets it up as staff and its console would (``pay`` uses it).
- :class:`Suite` holds them: ``client`` (the gateway), ``admin`` headers, ``stop(app)`` /
  ``start(app)`` to take one service down and bring it back, ``people`` (everyone
  registered, for the leak scans), and what the scans read (:mod:`tests.e2e.scan`): each
  process's log, each database and the topics under the suite's prefix.
- :class:`Person` makes the unique personal values one test user is known by (a phone
  number, an extra contact number, a password, a name, an address, a valid ID number, a
  taxpayer id, an email, order remarks, face bytes, device coordinates), so a scan can look
  for exactly them (``tests.e2e.scan.CATALOGUE_VALUES`` ties each to the catalogue's
  personal fields).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import secrets
import socket
import string
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from gateway.proxy import UPSTREAM_IDLE_S
from kit.clock import china_today
from kit.id_number import check_character
from kit.ids import new_id
from kit.migrations import upgrade
from kit.settings import REPO_ROOT
from kit.testing import LocalPostgres, standin_provider
from services.orders.orders.tax_id import USCC_ALPHABET, uscc_check_character

APPS: Final = {
    "identity": "services.identity",
    "orders": "services.orders",
    "consent": "services.consent",
    "transfer": "services.transfer",
    "gateway": "gateway",
}
SERVICES: Final = ("identity", "orders", "consent", "transfer")
READY_TIMEOUT_S: Final = 60.0
ADMIN_PASSWORD: Final = "e2e-admin-" + secrets.token_urlsafe(12)
FAMILY_NAMES: Final = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜"
STANDIN_APP_ID: Final = "wx0standin0000001"  # deploy/mini_platform's app for identity
OTHER_APP_ID: Final = "wx0otherapp000002"  # another mini-program on the same platform
ALIPAY_APP_ID: Final = "2021000000000001"  # the stand-in's Alipay mini-program for identity
OTHER_ALIPAY_APP_ID: Final = "2021000000000002"
GIVEN_NAMES: Final = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _coordinate(degrees: float) -> float:
    """``degrees`` plus a random fraction of a tenth of a degree, seven decimals."""
    return round(degrees + (secrets.randbelow(10**5) * 10 + 1 + secrets.randbelow(9)) * 1e-7, 7)


@dataclass(frozen=True)
class Person:
    """One user's personal values, unique to this run."""

    phone: str
    password: str
    name: str
    address_detail: str
    id_number: str
    tax_id: str
    email: str
    face: bytes
    extra_phone: str
    remarks: str
    search_words: str
    latitude: float
    longitude: float

    @classmethod
    def new(cls) -> Person:
        digits = "".join(random.choices(string.digits, k=8))
        family = random.choice(FAMILY_NAMES)
        name = family + "".join(random.choices(GIVEN_NAMES, k=2))
        # An adult born 1985-1995; sequence code below 998 (the sandbox authority fails those).
        first_17 = (
            f"330106{random.randint(1985, 1995)}0{random.randint(1, 9)}1{random.randint(0, 8)}"
        )
        first_17 += f"{random.randint(100, 997)}"
        credit = "91330100" + "".join(random.choices(USCC_ALPHABET, k=9))
        return cls(
            phone="139" + digits,
            password="pw-" + secrets.token_urlsafe(12),
            name=name,
            address_detail=f"文三路{random.randint(100, 999)}号{random.randint(1, 30)}幢"
            f"{random.randint(101, 2999)}室",
            id_number=first_17 + check_character(first_17),
            tax_id=credit + uscc_check_character(credit),
            email=f"e2e.{secrets.token_hex(6)}@example.com",
            face=b"face photo " + secrets.token_hex(12).encode(),
            extra_phone="138" + "".join(random.choices(string.digits, k=8)),
            # letters only: remarks refuse anything shaped like a number or an address
            remarks="请放门口 " + "".join(random.choices(string.ascii_lowercase, k=12)),
            # what the person typed into the search box (their search history, policy 2B)
            search_words="tea " + "".join(random.choices(string.ascii_lowercase, k=12)),
            # West Lake, Hangzhou, with seven distinctive decimals (the last never 0)
            latitude=_coordinate(30.2),
            longitude=_coordinate(120.1),
        )

    def order_body(self, goods_id: str, *, quantity: int = 1) -> dict[str, Any]:
        """The least an order needs: the goods, and this person as consignee."""
        return {
            "items": [{"goods_id": goods_id, "quantity": quantity}],
            "consignee_name": self.name,
            "consignee_phone": self.phone,
            "address": {
                "province": "浙江省",
                "city": "杭州市",
                "district": "西湖区",
                "detail": self.address_detail,
            },
        }

    @property
    def face_image(self) -> str:
        """The face as a client sends it (base64)."""
        return base64.b64encode(self.face).decode()

    @property
    def point(self) -> dict[str, float]:
        """The device location as an app sends it (``POST /orders/location/...``)."""
        return {"latitude": self.latitude, "longitude": self.longitude}

    def values(self) -> dict[str, str]:
        """What a leak scan looks for, by what it is."""
        return {
            "phone": self.phone,
            "extra phone": self.extra_phone,
            "password": self.password,
            "remarks": self.remarks,
            "search words": self.search_words,
            "latitude": repr(self.latitude),
            "longitude": repr(self.longitude),
            "name": self.name,
            "address": self.address_detail,
            "id number": self.id_number,
            "taxpayer id": self.tax_id,
            "email": self.email,
            "face image": self.face_image,
            "face bytes": self.face.decode(),
        }


@dataclass
class AppProcess:
    name: str
    port: int
    env: dict[str, str] = field(repr=False)
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    ops_port: int | None = None  # the gateway's operations routes (/readyz) listen there

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.ops_port or self.port}"

    def start(self) -> None:
        module = APPS[self.name]
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            f"{module}.main:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--no-access-log",
            "--no-proxy-headers",  # each app resolves X-Forwarded-For itself (kit.app)
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        last = "no answer"
        async with httpx.AsyncClient(base_url=self.ops_url, timeout=2.0) as client:
            while asyncio.get_running_loop().time() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    break
                try:
                    response = await client.get("/readyz")
                    if response.status_code == 200 and _ready(response.json()):
                        return
                    last = response.text
                except httpx.TransportError as exc:
                    last = repr(exc)
                await asyncio.sleep(0.25)
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{self.name} did not become ready ({last}); log tail:\n{tail}")


def _ready(readiness: dict[str, Any]) -> bool:
    """Ready, and every state view caught up (the gateway answers 503 until its consent
    view has read the topic to the end)."""
    checks = readiness.get("checks", {}).values()
    return readiness.get("status") == "ready" and all(
        check.get("detail", {}).get("caught_up", True) for check in checks
    )


@dataclass
class Suite:
    processes: dict[str, AppProcess]
    database_urls: dict[str, str]
    topic_prefix: str
    bootstrap_servers: str
    log_dir: Path
    client: httpx.AsyncClient
    admin: dict[str, str] = field(default_factory=dict)
    people: list[Person] = field(default_factory=list)
    payment_provider_url: str = ""
    payment_provider_id: str = ""
    platform_url: str = ""  # the stand-in mini-program platform (deploy/mini_platform)
    sms_file: Path | None = None  # the stand-in SMS gateway's outbox

    def sms_code(self, phone: str) -> str:
        """The last code the stand-in SMS gateway sent to ``phone`` (what the phone shows)."""
        assert self.sms_file is not None
        sent = [json.loads(line) for line in self.sms_file.read_text().splitlines()]
        codes = [message["code"] for message in sent if message["phone"] == phone]
        assert codes, f"no SMS was sent to {phone}"
        code: str = codes[-1]
        return code

    async def platform_code(
        self, user: str, *, appid: str = STANDIN_APP_ID, phone: str | None = None
    ) -> str:
        """What the mini-program gets on the user's phone: a login code (``wx.login``), or
        with ``phone`` the one-time code of ``getPhoneNumber``."""
        path, body = "/stand-in/wx.login", {"appid": appid, "user": user}
        if phone is not None:
            path, body = "/stand-in/getPhoneNumber", {**body, "phone": phone}
        async with httpx.AsyncClient(base_url=self.platform_url, timeout=10.0) as platform:
            answer = await platform.post(path, json=body)
        assert answer.status_code == 200, answer.text
        code: str = answer.json()["code"]
        return code

    async def alipay_code(self, user: str, *, appid: str = ALIPAY_APP_ID) -> str:
        """What an Alipay mini-program gets from ``my.getAuthCode`` on the user's phone."""
        async with httpx.AsyncClient(base_url=self.platform_url, timeout=10.0) as platform:
            answer = await platform.post(
                "/stand-in/my.getAuthCode", json={"appid": appid, "user": user}
            )
        assert answer.status_code == 200, answer.text
        code: str = answer.json()["code"]
        return code

    @property
    def gateway_url(self) -> str:
        return self.processes["gateway"].url

    def direct(self, name: str) -> httpx.AsyncClient:
        """A client of one app itself, behind the gateway's back (what a caller inside the
        network could do)."""
        return httpx.AsyncClient(base_url=self.processes[name].url, timeout=10.0)

    def stop(self, name: str) -> None:
        self.processes[name].stop()

    async def start(self, name: str) -> None:
        self.processes[name].start()
        await self.processes[name].wait_ready()

    # ------------------------------------------------------------------ behind the API

    async def sql(self, app: str, query: str, *args: Any) -> list[asyncpg.Record]:
        """Rows from ``app``'s database, read as its operator would."""
        dsn = (
            make_url(self.database_urls[app])
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        connection = await asyncpg.connect(dsn)
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    async def pay(self, buyer: Mapping[str, str], order_id: str) -> None:
        """What the buyer's app and wallet do: start payment through the gateway, confirm
        in the wallet (the stand-in provider's pay action), then the provider's signed
        notification reaches the gateway and the order becomes ``paid``."""
        payment = await self.call(
            "POST",
            f"/orders/orders/{order_id}/payment",
            headers=buyer,
            json={"provider_id": self.payment_provider_id},
            expect=201,
        )
        async with httpx.AsyncClient(base_url=self.payment_provider_url, timeout=10.0) as wallet:
            confirmed = await wallet.post(f"/v3/payments/{payment['provider_reference']}/pay")
            assert confirmed.status_code == 202, confirmed.text
        await self.eventually(
            "GET", f"/orders/orders/{order_id}", lambda o: o["status"] == "paid", headers=buyer
        )

    # ------------------------------------------------------------------ acting as people

    async def call(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        expect: int | tuple[int, ...] = 200,
        **kwargs: Any,
    ) -> Any:
        """One request through the gateway; fails with the answer unless it is ``expect``."""
        response = await self.client.request(method, path, headers=headers, **kwargs)
        wanted = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in wanted, f"{method} {path}: {response.text}"
        return response.json() if response.content else None

    async def place_order(
        self, person: Person, headers: Mapping[str, str], *, name: str = "Green tea"
    ) -> str:
        """What a shop and a buyer do for one order: the admin adds goods named ``name``,
        the buyer orders one to their own name and address. The order's id."""
        goods = await self.call(
            "POST",
            "/orders/admin/goods",
            headers=self.admin,
            json={"name": name, "price": "39.00"},
            expect=201,
        )
        placed = await self.call(
            "POST",
            "/orders/orders",
            headers={**headers, "Idempotency-Key": secrets.token_hex(8)},
            json=person.order_body(goods["goods_id"]),
            expect=201,
        )
        order_id: str = placed["order_id"]
        return order_id

    async def login(self, phone: str, password: str) -> dict[str, str]:
        tokens = await self.call(
            "POST", "/identity/login", json={"phone": phone, "password": password}
        )
        return bearer(tokens["access_token"])

    async def register(self, person: Person, *, agree: bool = True) -> tuple[str, dict[str, str]]:
        """A new user account for ``person``, agreeing to the policy in effect as an app's
        registration does (unless ``agree`` is false): its id and Authorization header."""
        self.people.append(person)
        created = await self.call(
            "POST",
            "/identity/accounts",
            json={"phone": person.phone, "password": person.password},
            expect=201,
        )
        headers = await self.login(person.phone, person.password)
        if agree:
            await self.agree_to_policy(headers)
        return created["account_id"], headers

    async def agree_to_policy(self, headers: Mapping[str, str]) -> str:
        """Agree to the policy in effect, then wait until the gateway lets the user shop
        (it learns the agreement from the consent state topic); the version agreed to."""
        version: str = (await self.call("GET", "/consent/policy"))["version"]
        await self.call(
            "POST",
            "/consent/policy/agreements",
            headers=headers,
            json={"version": version},
            expect=201,
        )
        await self.eventually("GET", "/orders/cart/shares", lambda _: True, headers=headers)
        return version

    async def partner(self, kind: str, purpose: str) -> tuple[str, dict[str, str]]:
        """A partner registered by the administrator with a passed assessment; its client
        id and the Authorization header of its client-credentials token."""
        today = china_today()
        created = await self.call(
            "POST",
            "/identity/partners",
            headers=self.admin,
            json={
                "name": f"{kind} partner {new_id('p')}",
                "contact": "partner-desk@example.com",
                "kind": kind,
                "agreement_type": "entrusted_processing",
                "agreement_reference": new_id("agr"),
                "assessment": {
                    "assessed_on": str(today - timedelta(days=5)),
                    "result": "passed",
                    "valid_until": str(today + timedelta(days=360)),
                },
                "purposes": [purpose],
            },
            expect=201,
        )
        response = await self.client.post(
            "/identity/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": created["client_id"],
                "client_secret": created["client_secret"],
            },
        )
        assert response.status_code == 200, response.text
        return created["client_id"], bearer(response.json()["access_token"])

    async def eventually(
        self,
        method: str,
        path: str,
        check: Any,
        *,
        headers: Mapping[str, str],
        payload: Any = None,
        within_s: float = 30,
    ) -> Any:
        """Poll ``path`` (sending ``payload`` as the JSON body, if any) until ``check(body)`` holds;
        the last body otherwise fails."""
        deadline = asyncio.get_running_loop().time() + within_s
        body: Any = None
        while True:
            response = await self.client.request(method, path, headers=headers, json=payload)
            body = response.json() if response.content else None
            if response.status_code == 200 and check(body):
                return body
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{method} {path} never matched: {response.text}")
            await asyncio.sleep(0.3)


# ---------------------------------------------------------------------------- set-up


def _suite_env(
    *,
    prefix: str,
    bootstrap_servers: str,
    database_urls: Mapping[str, str],
    ports: Mapping[str, int],
) -> dict[str, str]:
    identity = f"http://127.0.0.1:{ports['identity']}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PRIVACY_", "GATEWAY_", *(f"{s.upper()}_" for s in SERVICES)))
    }
    env.update(
        {
            "PRIVACY_ENVIRONMENT": "test",
            "PRIVACY_KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "PRIVACY_KAFKA_TOPIC_PREFIX": prefix,
            "PRIVACY_KAFKA_TOPIC_PARTITIONS": "1",
            "PRIVACY_AUTH_ISSUER": f"http://127.0.0.1:{ports['gateway']}/identity",
            "PRIVACY_AUTH_JWKS_URL": f"{identity}/.well-known/jwks.json",
            "PRIVACY_OUTBOX_POLL_INTERVAL_S": "0.05",
            "PRIVACY_OUTBOX_MAX_BACKOFF_S": "1.0",
            "PRIVACY_LOG_JSON": "true",
            "CONSENT_SERVICE_URLS": (
                "{"
                + ",".join(f'"{name}": "http://127.0.0.1:{ports[name]}"' for name in SERVICES)
                + "}"
            ),
            "TRANSFER_ORDERS_URL": f"http://127.0.0.1:{ports['orders']}",
            "ORDERS_PRIVACY_CENTER_URL": f"http://127.0.0.1:{ports['consent']}",
            "TRANSFER_WORKER_INTERVAL_S": "0.5",
            "TRANSFER_DELIVERY_ROUND_BACKOFF_S": "1",
            "ORDERS_RETENTION_SWEEP_ENABLED": "false",
            "ORDERS_PAYMENT_NOTIFY_BASE_URL": f"http://127.0.0.1:{ports['gateway']}",
            "GATEWAY_RATE_LIMIT_PER_S": "0",
            # Portability copies go to a test's stand-in processor on this machine.
            "CONSENT_PORTABILITY_PLAIN_HTTP_HOSTS": '["127.0.0.1"]',
        }
    )
    if "gateway-ops" in ports:
        env["GATEWAY_OPS_PORT"] = str(ports["gateway-ops"])
    for name in APPS:
        env[f"{name.upper()}_DATABASE_URL"] = database_urls[name]
        if name != "identity":
            env[f"GATEWAY_UPSTREAM_{name.upper()}_URL"] = f"http://127.0.0.1:{ports[name]}"
    env["GATEWAY_UPSTREAM_IDENTITY_URL"] = identity
    return env


def _start_platform(log_dir: Path, port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        *("-m", "uvicorn", "--factory", "deploy.mini_platform.main:create_app"),
        *("--host", "127.0.0.1", "--port", str(port), "--no-access-log"),
    ]
    with (log_dir / "mini-platform.log").open("ab") as log:
        return subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@asynccontextmanager
async def standin_platform(log_dir: Path, *, port: int) -> AsyncIterator[str]:
    """The stand-in mini-program platform (``deploy/mini_platform``) on ``port``, its log
    beside the apps'; its URL once it answers."""
    url = f"http://127.0.0.1:{port}"
    process = _start_platform(log_dir, port)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=2.0) as client:
            for _ in range(200):  # bounded: 20 s
                if process.poll() is not None:
                    raise RuntimeError("the stand-in platform exited at start")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("the stand-in platform did not start")
        yield url
    finally:
        _stop(process)


def _identity_cli(env: Mapping[str, str], *args: str) -> dict[str, str]:
    """Run ``python -m services.identity`` and read its ``key: value`` lines."""
    done = subprocess.run(
        [sys.executable, "-m", "services.identity", *args],
        check=False,
        cwd=REPO_ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        key.strip(): value.strip()
        for key, _, value in (line.partition(":") for line in done.stdout.splitlines())
        if value
    }


async def _set_up_payment_provider(suite: Suite, url: str) -> None:
    """What staff and the provider's console do once: the provider registered as a partner
    (kind payment_provider), set up at orders with its public key, the shop's public key
    uploaded to the provider."""
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as console:
        public_key = (await console.get("/public-key")).json()["public_key"]
        provider_id, _ = await suite.partner("payment_provider", "order.payment")
        created = await suite.call(
            "POST",
            "/orders/admin/payment-providers",
            headers=suite.admin,
            json={
                "provider_id": provider_id,
                "name": "Stand-in Pay",
                "api_url": url,
                "notification_public_key": public_key,
            },
            expect=201,
        )
        uploaded = await console.put(
            "/merchant", json={"shop_public_key": created["shop_public_key"]}
        )
        assert uploaded.status_code == 204, uploaded.text
    suite.payment_provider_url, suite.payment_provider_id = url, provider_id


@asynccontextmanager
async def running_suite(
    *, postgres: LocalPostgres, bootstrap_servers: str, log_dir: Path, sqlite: bool = False
) -> AsyncIterator[Suite]:
    """The suite on fresh PostgreSQL databases, or with ``sqlite`` on SQLite files in
    ``log_dir`` (``make run``'s default; :meth:`Suite.sql` reads PostgreSQL only)."""
    prefix = f"e2e{secrets.token_hex(4)}."
    ports = {name: free_port() for name in (*APPS, "gateway-ops")}
    async with AsyncExitStack() as stack:
        urls = {
            name: (
                f"sqlite+aiosqlite:///{log_dir / name}.db"
                if sqlite
                else await stack.enter_async_context(postgres.database())
            )
            for name in APPS
        }
        for name, package in APPS.items():
            await upgrade(package, urls[name])
        env = _suite_env(
            prefix=prefix, bootstrap_servers=bootstrap_servers, database_urls=urls, ports=ports
        )
        platform_url = await stack.enter_async_context(standin_platform(log_dir, port=free_port()))
        # The SMS outbox holds phone numbers, as a real SMS provider does: beside the logs,
        # not among them (the leak scans read the logs).
        sms_file = log_dir.parent / f"{log_dir.name}-sms" / "outbox.log"
        env["IDENTITY_WECHAT_API_URL"] = platform_url
        env["IDENTITY_ALIPAY_GATEWAY_URL"] = f"{platform_url}/gateway.do"
        env["IDENTITY_SMS_FILE"] = str(sms_file)
        token_url = f"http://127.0.0.1:{ports['identity']}/oauth2/token"
        for service, scope in (
            ("consent", "service:rights.access"),
            ("orders", "service:rights.access"),
            ("transfer", "service:cross_border.transfer"),
        ):
            registered = _identity_cli(
                env, "create-service-client", "--name", service, "--scope", scope
            )
            env[f"{service.upper()}_IDENTITY_TOKEN_URL"] = token_url
            env[f"{service.upper()}_SERVICE_CLIENT_ID"] = registered["client_id"]
            env[f"{service.upper()}_SERVICE_CLIENT_SECRET"] = registered["client_secret"]
        admin_phone = "137" + "".join(random.choices(string.digits, k=8))
        _identity_cli(
            {**env, "IDENTITY_ADMIN_PASSWORD": ADMIN_PASSWORD},
            "create-admin",
            "--phone",
            admin_phone,
            *("--role", "privacy_officer", "--role", "catalogue_manager"),
        )
        processes = {
            name: AppProcess(name, ports[name], env, log_dir / f"{name}.log") for name in APPS
        }
        processes["gateway"].ops_port = ports["gateway-ops"]
        for process in processes.values():
            stack.callback(process.stop)
        processes["identity"].start()
        await processes["identity"].wait_ready()
        for name in ("orders", "consent", "transfer", "gateway"):
            processes[name].start()
        for name in ("orders", "consent", "transfer", "gateway"):
            await processes[name].wait_ready()
        # Idle connections are dropped before the gateway's uvicorn closes them (5 s), as
        # the gateway drops its own upstream ones: at the same 5 s a request sent just as
        # the gateway closed one failed to read (found by tests/invariants after a wait).
        client = httpx.AsyncClient(
            base_url=processes["gateway"].url,
            timeout=30.0,
            limits=httpx.Limits(keepalive_expiry=UPSTREAM_IDLE_S),
        )
        stack.push_async_callback(client.aclose)
        suite = Suite(
            processes=processes,
            database_urls=urls,
            topic_prefix=prefix,
            bootstrap_servers=bootstrap_servers,
            log_dir=log_dir,
            client=client,
            platform_url=platform_url,
            sms_file=sms_file,
        )
        suite.admin = await suite.login(admin_phone, ADMIN_PASSWORD)
        provider = await stack.enter_async_context(standin_provider(log_dir, port=free_port()))
        await _set_up_payment_provider(suite, provider.url)
        yield suite
