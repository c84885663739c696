"""Login throttling through the gateway (issue 20 item 11, issue 23 item 1), as clients at
different addresses would meet it, the real identity service behind the real gateway.

- a client sending its own ``X-Forwarded-For`` is still counted at its own address (the
  gateway replaces the chain; identity believes only the gateway);
- with the gateway on another host, each client keeps its own address at identity;
- an account locks with backoff for devices it never signed in on, while a device that
  signed in before keeps a way in (OWASP device cookies);
- a shared address (carrier NAT) is slowed, never locked for minutes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.security.conftest import Suite, running_suite

PASSWORD = "correct horse battery"
WRONG = "wrong horse battery"
ATTACKER, NEIGHBOUR, OWNER = "198.51.100.66", "198.51.100.77", "203.0.113.10"
GATEWAY_HOST = ("10.1.2.3", 4000)  # the gateway seen from identity on another host


@asynccontextmanager
async def at(suite: Suite, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the gateway connecting from ``address``."""
    transport = httpx.ASGITransport(app=suite.gateway.app, client=(address, 50_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


async def register(client: httpx.AsyncClient, phone: str) -> None:
    answer = await client.post("/identity/accounts", json={"phone": phone, "password": PASSWORD})
    assert answer.status_code == 201, answer.text


async def login(
    client: httpx.AsyncClient, phone: str, password: str, **headers: str
) -> httpx.Response:
    return await client.post(
        "/identity/login", json={"phone": phone, "password": password}, headers=headers
    )


DELAY = 3  # seconds between tries from a slowed address


def throttled(**identity: Any) -> dict[str, dict[str, Any]]:
    return {"identity": {"login_address_failures": 3, "login_address_delay_s": DELAY, **identity}}


def slowed(answer: httpx.Response) -> int:
    """The wait a slowed address is told: a few seconds at most, never minutes."""
    assert answer.status_code == 429, answer.text
    wait = int(answer.headers["retry-after"])
    assert 1 <= wait <= DELAY
    return wait


async def test_a_forged_x_forwarded_for_does_not_earn_a_fresh_address(tmp_path: Path) -> None:
    """Each failure names another address in X-Forwarded-For; the count stays on the
    client's own, which is slowed after 3 failures."""
    async with (
        running_suite(tmp_path, rate_limit_per_s=0, service_overrides=throttled()) as suite,
        at(suite, ATTACKER) as attacker,
    ):
        for n in range(3):  # other phones each time: no account lock is involved
            forged = {"X-Forwarded-For": f"192.0.2.{n + 1}"}
            answer = await login(attacker, f"1390000000{n}", WRONG, **forged)
            assert answer.status_code == 401, answer.text
        slowed(await login(attacker, "13900000009", WRONG, **{"X-Forwarded-For": "192.0.2.99"}))


async def test_behind_a_gateway_on_another_host_each_client_keeps_its_address(
    tmp_path: Path,
) -> None:
    """identity trusts the gateway's address (IDENTITY_TRUSTED_PROXIES): one client's
    failures slow that client, not everyone coming through the gateway."""
    overrides = throttled(trusted_proxies=[GATEWAY_HOST[0]])
    async with (
        running_suite(
            tmp_path,
            rate_limit_per_s=0,
            service_overrides=overrides,
            gateway_address=GATEWAY_HOST,
        ) as suite,
        at(suite, ATTACKER) as attacker,
        at(suite, NEIGHBOUR) as neighbour,
    ):
        await register(neighbour, "13911112222")
        for n in range(3):
            assert (await login(attacker, f"1390000000{n}", WRONG)).status_code == 401
        slowed(await login(attacker, "13900000009", WRONG))
        answer = await login(neighbour, "13911112222", PASSWORD)
        assert answer.status_code == 200, answer.text


async def test_an_account_locks_with_backoff_and_a_known_device_keeps_a_way_in(
    tmp_path: Path,
) -> None:
    overrides = {"identity": {"login_max_failures": 5, "login_lock_s": 5}}
    async with (
        running_suite(tmp_path, rate_limit_per_s=0, service_overrides=overrides) as suite,
        at(suite, OWNER) as owner,
        at(suite, ATTACKER) as attacker,
    ):
        phone = "13922223333"
        await register(owner, phone)
        first = await login(owner, phone, PASSWORD)
        assert first.status_code == 200, first.text
        cookie = first.headers["set-cookie"]
        assert cookie.startswith("device=")
        for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
            assert attribute.lower() in cookie.lower(), attribute
        device = cookie.split(";", 1)[0]

        for _ in range(5):
            assert (await login(attacker, phone, WRONG)).status_code == 401
        locked = await login(attacker, phone, PASSWORD)  # the right password, new device
        assert locked.status_code == 429, locked.text
        assert locked.headers["retry-after"] == "5"
        assert locked.headers["content-type"].startswith("application/problem+json")
        # The owner's phone, which signed in before, is not held by the lock.
        known = await login(owner, phone, PASSWORD, Cookie=device)
        assert known.status_code == 200, known.text
        # Nor does a device cookie of another account open it.
        await register(attacker, "13933334444")
        other = await login(attacker, "13933334444", PASSWORD)
        other_device = other.headers["set-cookie"].split(";", 1)[0]
        assert (await login(attacker, phone, PASSWORD, Cookie=other_device)).status_code == 429

        await asyncio.sleep(5)  # the first lock has passed: one more failure doubles it
        assert (await login(attacker, phone, WRONG)).status_code == 401
        again = await login(attacker, phone, PASSWORD)
        assert again.status_code == 429
        assert again.headers["retry-after"] == "10"


async def test_a_shared_address_is_slowed_not_locked(tmp_path: Path) -> None:
    """Carrier NAT: failures from one address (other phones) leave its other users a wait
    of a few seconds, and none at all on a device that signed in before."""
    async with (
        running_suite(tmp_path, rate_limit_per_s=0, service_overrides=throttled()) as suite,
        at(suite, ATTACKER) as shared,
    ):
        regular, returning = "13944445555", "13955556666"
        await register(shared, regular)
        await register(shared, returning)
        device = (await login(shared, returning, PASSWORD)).headers["set-cookie"].split(";")[0]
        for n in range(3):
            assert (await login(shared, f"1390000000{n}", WRONG)).status_code == 401
        wait = slowed(await login(shared, regular, PASSWORD))
        assert (await login(shared, returning, PASSWORD, Cookie=device)).status_code == 200
        await asyncio.sleep(wait)
        answer = await login(shared, regular, PASSWORD)
        assert answer.status_code == 200, answer.text
