"""The authoritative provider behind its adapter (OB-2A-2): the sandbox's documented
outcomes, the HTTP adapter against a mock provider (request shape, retries, give-up,
timeouts, malformed answers) and the choice made from settings. Nothing personal is
logged (OB-2A-3)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable

import httpx
import pytest

from services.identity.config import Settings
from services.identity.verification.authority import (
    AuthorityResult,
    HttpAuthority,
    ProviderUnavailable,
    SandboxAuthority,
    authority_from_settings,
)
from tests.services.identity.ids import DOWN, MISMATCH, with_check

URL = "https://authority.test/v1/verify"
NAME = "张三"


ID_NUMBER = with_check("11010519800101123")


# -- sandbox -------------------------------------------------------------------------------


@pytest.mark.obligation("OB-2A-2")
async def test_sandbox_outcomes_are_the_documented_ones() -> None:
    sandbox = SandboxAuthority()
    plain = await sandbox.check(real_name=NAME, id_number=ID_NUMBER, face_image=None)
    assert (plain.matched, plain.level) == (True, "real_name")
    assert plain.reference.startswith("sandbox-")
    face = await sandbox.check(real_name=NAME, id_number=ID_NUMBER, face_image=b"\xff\xd8jpeg")
    assert (face.matched, face.level) == (True, "real_person")
    no_face = await sandbox.check(real_name=NAME, id_number=ID_NUMBER, face_image=b"NOFACE..")
    assert (no_face.matched, no_face.level) == (False, "real_person")
    mismatch = await sandbox.check(real_name=NAME, id_number=MISMATCH, face_image=None)
    assert (mismatch.matched, mismatch.level) == (False, "real_name")
    with pytest.raises(ProviderUnavailable) as caught:
        await sandbox.check(real_name=NAME, id_number=DOWN, face_image=None)
    assert caught.value.status == 503 and caught.value.code == "provider-unavailable"
    assert caught.value.retry_after_s == 5
    assert caught.value.headers == {"Retry-After": "5"}


# -- HTTP ----------------------------------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def authority(handler: Handler, *, retries: int = 2, timeout_s: float = 1.0) -> HttpAuthority:
    return HttpAuthority(
        URL,
        client_id="client-1",
        client_secret="s3cret",
        timeout_s=timeout_s,
        retries=retries,
        transport=httpx.MockTransport(handler),
        backoff_s=0,
    )


def answer(matched: bool = True, level: str = "real_name") -> httpx.Response:
    return httpx.Response(200, json={"matched": matched, "level": level, "reference": "tx-42"})


@pytest.mark.obligation("OB-2A-2")
async def test_a_match_and_the_request_it_took(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(level="real_person")

    result = await authority(handler).check(
        real_name=NAME, id_number=ID_NUMBER, face_image=b"face-bytes"
    )
    assert result == AuthorityResult(matched=True, level="real_person", reference="tx-42")
    (request,) = seen
    assert request.method == "POST" and str(request.url) == URL
    expected_auth = "Basic " + base64.b64encode(b"client-1:s3cret").decode()
    assert request.headers["authorization"] == expected_auth
    assert json.loads(request.content) == {
        "name": NAME,
        "id_number": ID_NUMBER,
        "face_image": base64.b64encode(b"face-bytes").decode(),
    }
    for secret in (NAME, ID_NUMBER, base64.b64encode(b"face-bytes").decode(), "s3cret"):
        assert secret not in caplog.text


@pytest.mark.obligation("OB-2A-2")
async def test_without_a_face_image_none_is_sent() -> None:
    bodies: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return answer(matched=False)

    result = await authority(handler).check(real_name=NAME, id_number=ID_NUMBER, face_image=None)
    assert not result.matched
    assert bodies == [{"name": NAME, "id_number": ID_NUMBER}]


@pytest.mark.obligation("OB-2A-2")
async def test_transient_faults_are_retried_then_succeed() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(calls) == 2:
            return httpx.Response(502)
        return answer()

    result = await authority(handler, retries=2).check(
        real_name=NAME, id_number=ID_NUMBER, face_image=None
    )
    assert result.matched and len(calls) == 3


@pytest.mark.obligation("OB-2A-2")
async def test_5xx_until_retries_are_exhausted_is_provider_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503, headers={"Retry-After": "12"}, text=f"busy {ID_NUMBER}")

    with pytest.raises(ProviderUnavailable) as caught:
        await authority(handler, retries=2).check(
            real_name=NAME, id_number=ID_NUMBER, face_image=None
        )
    assert len(calls) == 3
    assert caught.value.retry_after_s == 12
    assert caught.value.headers == {"Retry-After": "12"}
    assert ID_NUMBER not in caught.value.detail and ID_NUMBER not in caplog.text


@pytest.mark.obligation("OB-2A-2")
async def test_timeouts_are_retried_then_provider_unavailable() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ReadTimeout("too slow", request=request)

    with pytest.raises(ProviderUnavailable) as caught:
        await authority(handler, retries=1).check(
            real_name=NAME, id_number=ID_NUMBER, face_image=None
        )
    assert len(calls) == 2 and caught.value.retry_after_s == 30


@pytest.mark.parametrize(
    "response",
    [
        pytest.param(httpx.Response(400, json={"error": "bad"}), id="4xx"),
        pytest.param(httpx.Response(200, text="not json"), id="not-json"),
        pytest.param(httpx.Response(200, json={"matched": "yes"}), id="wrong-types"),
        pytest.param(
            httpx.Response(200, json={"matched": True, "level": "gold", "reference": "t"}),
            id="unknown-level",
        ),
        pytest.param(
            httpx.Response(200, json={"matched": True, "level": "real_name", "reference": ""}),
            id="no-reference",
        ),
    ],
)
@pytest.mark.obligation("OB-2A-2")
async def test_any_other_answer_is_provider_unavailable_without_retry(
    response: httpx.Response,
) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return response

    with pytest.raises(ProviderUnavailable):
        await authority(handler).check(real_name=NAME, id_number=ID_NUMBER, face_image=None)
    assert len(calls) == 1


# -- settings ------------------------------------------------------------------------------


@pytest.mark.obligation("OB-2A-2")
def test_the_adapter_comes_from_settings() -> None:
    assert isinstance(authority_from_settings(Settings()), SandboxAuthority)
    http = authority_from_settings(
        Settings(
            authority_adapter="http",
            authority_url=URL,
            authority_client_id="client-1",
            authority_client_secret="s3cret",
            authority_retries=3,
        )
    )
    assert isinstance(http, HttpAuthority)
    assert http.url == URL and http.retries == 3 and "s3cret" not in repr(http)
    with pytest.raises(ValueError, match="URL is required"):
        authority_from_settings(Settings(authority_adapter="http"))
    with pytest.raises(ValueError, match="cannot serve production"):
        production_key = base64.b64encode(bytes(range(32))).decode()
        authority_from_settings(Settings(environment="production", master_key=production_key))
