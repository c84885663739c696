"""A burst of logins does not stall identity (issue 23, item 2): argon2 runs in threads of
its own, so while password hashes are being checked the event loop answers everything else.

The hasher is held inside its verification until the test lets it go (a gate), so the proof
is the order of events, not a time: ``/healthz`` answers while the hashes of a burst of
logins are still held. With argon2 on the event loop the held verification holds the whole
app, ``/healthz`` cannot answer until the gate gives up waiting, and the order is reversed.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Literal

import pytest
from argon2 import PasswordHasher

from kit.testing import UNREACHABLE_KAFKA, eventually, serve_app
from services.identity import secrets as identity_secrets
from services.identity.config import Settings

pytestmark = pytest.mark.security

PASSWORD = "correct horse battery"
BURST = 4
#: Only a safety net so a regression fails instead of hanging; the test never waits it out.
GATE_GIVES_UP_S = 3.0


class GatedHasher(PasswordHasher):
    """argon2 whose verification waits at a gate and logs what happened, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.log: list[str] = []
        self._lock = threading.Lock()

    def note(self, what: str) -> None:
        with self._lock:
            self.log.append(what)

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.note("hash held")
        self.entered.set()
        self.note("hash released" if self.release.wait(GATE_GIVES_UP_S) else "gate gave up")
        return super().verify(hash, password)


async def test_health_answers_while_a_burst_of_logins_is_hashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/identity.db",
        kafka_bootstrap_servers=UNREACHABLE_KAFKA,
        auth_issuer="http://identity.test",
        log_json=False,
    )
    async with serve_app("services.identity", settings) as (_, client):
        phones = [f"1391234{n:04d}" for n in range(BURST)]
        for phone in phones:
            created = await client.post("/accounts", json={"phone": phone, "password": PASSWORD})
            assert created.status_code == 201, created.text
        gate = GatedHasher()
        monkeypatch.setattr(identity_secrets, "_hasher", gate)

        logins = [
            asyncio.create_task(client.post("/login", json={"phone": p, "password": PASSWORD}))
            for p in phones
        ]

        async def hashing() -> bool:
            return gate.entered.is_set()

        await eventually(hashing, timeout_s=30, what="a login to reach its password hash")
        health = await client.get("/healthz")
        gate.note("health answered")
        assert health.status_code == 200, health.text
        assert not all(login.done() for login in logins), "the burst was over already"
        gate.release.set()
        answers = await asyncio.gather(*logins)

    assert [answer.status_code for answer in answers] == [200] * BURST
    assert "gate gave up" not in gate.log, gate.log
    assert gate.log.index("health answered") < gate.log.index("hash released"), gate.log
