"""Attacks on sign-in by SMS code and by mini-program platform code (issue 26 item 5), the
real identity service behind the real gateway, the stand-in SMS gateway (a file) and the
stand-in mini-program platform (``deploy/mini_platform``, in process):

- guessing a code: after 5 wrong tries even the right code is refused;
- replaying a code: a code signs in once;
- flooding a phone or from one address with sends: a cool-down, then an allowance per
  hour, answered 429 with ``Retry-After``;
- enumeration: asking for a code, and failing a sign-in, answer the same whether or not
  the phone has an account, and the same work is done (the SMS goes out either way);
- a platform code issued to another mini-program is refused;
- the platform's ``session_key`` leaks nowhere: not in any answer, log line or event.
"""

from __future__ import annotations

import json
import logging
import random
import string
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from deploy.mini_platform.main import create_app as create_platform
from kit.testing import outbox_events
from services.identity.accounts.service import PHONE_CONTEXT
from services.identity.mini_program.platform import WeChatPlatform
from services.identity.models import LoginThrottle
from tests.security.conftest import Suite, running_suite

APP_ID, APP_SECRET = "wx0standin0000001", "standin-app-secret"
OTHER_APP_ID = "wx0otherapp000002"
POLICY_VERSION = "1.0"
SENDS_PER_PHONE, SENDS_PER_ADDRESS = 3, 4


@dataclass
class SignInSuite:
    suite: Suite
    sms_file: Path
    platform: httpx.AsyncClient  # what the mini-program on the phone talks to
    answers: list[httpx.Response]  # every answer the gateway gave in these tests

    @asynccontextmanager
    async def at(self, address: str) -> AsyncIterator[httpx.AsyncClient]:
        """A client of the gateway connecting from ``address``; its answers are kept."""

        async def keep(response: httpx.Response) -> None:
            await response.aread()
            self.answers.append(response)

        transport = httpx.ASGITransport(app=self.suite.gateway.app, client=(address, 50_000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway", event_hooks={"response": [keep]}
        ) as client:
            yield client

    def code_sent_to(self, phone: str) -> str:
        sent = [json.loads(line) for line in self.sms_file.read_text().splitlines()]
        codes = [message["code"] for message in sent if message["phone"] == phone]
        assert codes, f"no SMS to {phone}"
        code: str = codes[-1]
        return code

    def sends_to(self, phone: str) -> int:
        if not self.sms_file.exists():
            return 0
        return sum(
            json.loads(line)["phone"] == phone for line in self.sms_file.read_text().splitlines()
        )

    async def platform_code(self, user: str, *, appid: str = APP_ID) -> str:
        answer = await self.platform.post("/stand-in/wx.login", json={"appid": appid, "user": user})
        assert answer.status_code == 200, answer.text
        code: str = answer.json()["code"]
        return code


@pytest.fixture(scope="module")
async def signin(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SignInSuite]:
    directory = tmp_path_factory.mktemp("signin")
    sms_file = directory / "sms" / "outbox.log"
    identity = {
        "sms_file": str(sms_file),
        "sms_sends_per_phone": SENDS_PER_PHONE,
        "sms_sends_per_address": SENDS_PER_ADDRESS,
    }
    platform_app = create_platform()
    async with (
        running_suite(
            directory, rate_limit_per_s=0, service_overrides={"identity": identity}
        ) as suite,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=platform_app), base_url="http://platform"
        ) as platform,
    ):
        suite.services["identity"].state.mini_program_platforms["wechat"] = WeChatPlatform(
            "http://platform",
            app_id=APP_ID,
            app_secret=APP_SECRET,
            timeout_s=5.0,
            transport=httpx.ASGITransport(app=platform_app),
        )
        yield SignInSuite(suite=suite, sms_file=sms_file, platform=platform, answers=[])


def new_phone() -> str:
    return "139" + "".join(random.choices(string.digits, k=8))


def new_address() -> str:
    return f"198.51.100.{random.randint(1, 254)}"


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def sign_in(client: httpx.AsyncClient, phone: str, code: str) -> httpx.Response:
    return await client.post(
        "/identity/sms/sign-in",
        json={"phone": phone, "code": code, "policy_version": POLICY_VERSION},
    )


async def test_guessing_a_code_ends_after_five_wrong_tries(signin: SignInSuite) -> None:
    phone = new_phone()
    async with signin.at(new_address()) as client:
        assert (await client.post("/identity/sms/codes", json={"phone": phone})).status_code == 202
        code = signin.code_sent_to(phone)
        for _ in range(5):
            refused = await sign_in(client, phone, wrong(code))
            assert refused.status_code == 401
            assert refused.json()["type"].endswith("/sms-code-rejected")
        late = await sign_in(client, phone, code)
    assert late.status_code == 401, late.text


async def test_a_code_signs_in_once(signin: SignInSuite) -> None:
    phone = new_phone()
    async with signin.at(new_address()) as client:
        await client.post("/identity/sms/codes", json={"phone": phone})
        code = signin.code_sent_to(phone)
        first = await sign_in(client, phone, code)
        assert first.status_code == 200, first.text
        replayed = await sign_in(client, phone, code)
    assert replayed.status_code == 401, replayed.text


async def test_a_code_is_for_its_phone_only(signin: SignInSuite) -> None:
    phone, other = new_phone(), new_phone()
    async with signin.at(new_address()) as client:
        await client.post("/identity/sms/codes", json={"phone": phone})
        await client.post("/identity/sms/codes", json={"phone": other})
        taken = await sign_in(client, other, signin.code_sent_to(phone))
    assert signin.code_sent_to(phone) != signin.code_sent_to(other)
    assert taken.status_code == 401, taken.text


async def test_sending_again_at_once_waits_for_the_cool_down(signin: SignInSuite) -> None:
    phone = new_phone()
    async with signin.at(new_address()) as client:
        assert (await client.post("/identity/sms/codes", json={"phone": phone})).status_code == 202
        again = await client.post("/identity/sms/codes", json={"phone": phone})
    assert again.status_code == 429
    assert again.json()["type"].endswith("/too-many-codes")
    assert 1 <= int(again.headers["Retry-After"]) <= 60
    assert signin.sends_to(phone) == 1


async def test_a_phone_gets_its_allowance_then_waits_for_the_hour(signin: SignInSuite) -> None:
    phone = new_phone()
    answers = []
    for _ in range(SENDS_PER_PHONE + 1):
        async with signin.at(new_address()) as client:  # from ever new addresses
            answers.append(await client.post("/identity/sms/codes", json={"phone": phone}))
        if answers[-1].status_code == 202:
            await _past_cool_down(signin, phone)
    assert [a.status_code for a in answers] == [202] * SENDS_PER_PHONE + [429]
    assert int(answers[-1].headers["Retry-After"]) > 60  # the rest of the hour
    assert signin.sends_to(phone) == SENDS_PER_PHONE


async def _past_cool_down(signin: SignInSuite, phone: str) -> None:
    """What waiting a minute does: the phone's cool-down ends."""
    context = signin.suite.services["identity"].state.context
    index = context.cipher.blind_index(phone, context=PHONE_CONTEXT)
    async with context.database.session() as session:
        row = await session.get(LoginThrottle, f"sms:phone:{index}")
        assert row is not None
        row.locked_until = None


async def test_one_address_flooding_many_phones_is_stopped(signin: SignInSuite) -> None:
    phones = [new_phone() for _ in range(SENDS_PER_ADDRESS + 1)]
    async with signin.at(new_address()) as client:
        answers = [await client.post("/identity/sms/codes", json={"phone": p}) for p in phones]
    assert [a.status_code for a in answers] == [202] * SENDS_PER_ADDRESS + [429]
    assert "Retry-After" in answers[-1].headers
    assert signin.sends_to(phones[-1]) == 0


async def test_asking_for_a_code_does_not_tell_whether_the_phone_has_an_account(
    signin: SignInSuite,
) -> None:
    member, stranger = new_phone(), new_phone()
    async with signin.at(new_address()) as client:
        created = await client.post(
            "/identity/accounts", json={"phone": member, "password": "a-password-1"}
        )
        assert created.status_code == 201, created.text
        sent = [
            await client.post("/identity/sms/codes", json={"phone": p}) for p in (member, stranger)
        ]
        failed = [await sign_in(client, p, "000000") for p in (member, stranger)]
    # the same answers, and the same work: the SMS went out to both
    assert [a.status_code for a in sent] == [202, 202]
    assert sent[0].json() == sent[1].json()
    assert [a.status_code for a in failed] == [401, 401]
    assert failed[0].json() == {**failed[1].json(), "instance": failed[0].json().get("instance")}
    assert signin.sends_to(member) == signin.sends_to(stranger) == 1


async def test_a_code_of_another_mini_program_is_refused(signin: SignInSuite) -> None:
    code = await signin.platform_code("wx-user-other-app", appid=OTHER_APP_ID)
    async with signin.at(new_address()) as client:
        answer = await client.post(
            "/identity/mini-program/sign-in",
            json={"code": code, "policy_version": POLICY_VERSION},
        )
    assert answer.status_code == 401, answer.text
    assert answer.json()["type"].endswith("/platform-code-rejected")


async def test_the_session_key_leaks_nowhere(
    signin: SignInSuite, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with signin.at(new_address()) as client:
        for user in ("wx-user-leak-1", "wx-user-leak-2"):
            answer = await client.post(
                "/identity/mini-program/sign-in",
                json={"code": await signin.platform_code(user), "policy_version": POLICY_VERSION},
            )
            assert answer.status_code == 200, answer.text
            tokens = answer.json()
            await client.post(
                "/identity/logout",
                json={"refresh_token": tokens["refresh_token"]},
                headers={"Authorization": f"Bearer {tokens['access_token']}"},
            )
    issued = (await signin.platform.get("/stand-in/issued")).json()["session_keys"]
    assert len(issued) >= 2
    identity = signin.suite.services["identity"].state.context
    events = await outbox_events(identity.database)
    places = {
        "answers": [a.content + json.dumps(dict(a.headers)).encode() for a in signin.answers],
        "logs": [record.getMessage().encode() for record in caplog.records],
        "events": [json.dumps(event.model_dump(mode="json")).encode() for event in events],
    }
    leaks = [
        where
        for where, blobs in places.items()
        for blob in blobs
        for key in issued
        if key.encode() in blob
    ]
    assert places["answers"] and places["events"]
    assert leaks == []
