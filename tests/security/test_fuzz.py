"""Fuzzing with schemathesis (issue 9; ``make fuzz``, marker ``fuzz``, never in a plain
``make test``): every operation of every service's own OpenAPI, called at the service,
and every operation of the gateway's own OpenAPI (issue 18: the routes it exposes, their
purposes, filtered answers and the problems it adds), called through the gateway, each
authenticated as a user, a partner and an admin, with valid (positive) and invalid (negative) data.

Each response must:

- not be a server error, except a 502, 503 or 504 its operation documents;
- conform to its operation's documented schema and content type when documented;
- refuse invalid input (negative data) with a 4xx: nothing invalid is accepted.

Bounded: ``FUZZ_EXAMPLES`` (default 8) examples per operation, mode and caller; each
run prints how many requests it sent. The hypothesis engine runs
in a worker thread; each request is sent on the test's event loop (where the apps and
their background tasks live) through ``httpx.ASGITransport``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
)
from schemathesis.core.failures import Failure

from kit.testing import new_subject
from tests.security.conftest import SERVICES, Suite, running_suite

pytestmark = [pytest.mark.fuzz, pytest.mark.security]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
DOCUMENTED_UPSTREAM_ERRORS = frozenset({502, 503, 504})
CALLERS = ("user", "partner", "admin")
TARGETS = (*SERVICES, "gateway")


class ServerError(Failure):
    """A 5xx that is not a documented 502/503/504."""

    code = "SEC500"
    kind_title = "Server error"

    @property
    def _unique_key(self) -> str:
        return self.message


@schemathesis.check
def no_undocumented_server_error(ctx: Any, response: Any, case: Case[Any]) -> bool | None:
    status = int(response.status_code)
    if status < 500:
        return None
    documented = str(status) in case.operation.definition.raw.get("responses", {})
    if status in DOCUMENTED_UPSTREAM_ERRORS and documented:
        return None
    raise ServerError(
        operation=case.operation.label,
        message=f"{status}: {response.content[:300]!r}",
    )


CHECKS = [
    no_undocumented_server_error,
    response_schema_conformance,
    content_type_conformance,
    negative_data_rejection,
]


def caller_headers(suite: Suite, caller: str) -> dict[str, str]:
    if caller == "user":
        return suite.user(new_subject())
    if caller == "partner":
        return suite.partner(new_subject("ptn"), "partner:logistics", ["logistics.delivery"])
    return suite.staff(new_subject("stf"))


@dataclass
class Run:
    """One fuzz run's tally."""

    requests: int = 0
    operations: int = 0
    unsatisfiable: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def to_httpx(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A requests-style serialised case as httpx arguments."""
    sent: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "headers": kwargs.get("headers") or {},
        "params": kwargs.get("params") or None,
        "cookies": kwargs.get("cookies") or None,
    }
    if "json" in kwargs:
        sent["json"] = kwargs["json"]
    data = kwargs.get("data")
    if isinstance(data, bytes | str):
        sent["content"] = data
    elif data is not None:
        sent["data"] = data
    if kwargs.get("files"):
        sent["files"] = kwargs["files"]
    return sent


def fuzz_operations(
    schema: Any,
    send: Callable[[Case[Any]], httpx.Response],
    run: Run,
) -> None:
    """Runs in a worker thread: the hypothesis engine, ``EXAMPLES`` cases per operation
    and mode; a failing case is recorded, and the run goes on to the next operation."""
    for result in schema.get_all_operations():
        operation = result.ok()
        run.operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Case[Any]) -> None:
                response = send(case)
                run.requests += 1
                run.statuses[response.status_code] = run.statuses.get(response.status_code, 0) + 1
                case.validate_response(response, checks=CHECKS)

            try:
                check()
            except Unsatisfiable:
                run.unsatisfiable += 1  # nothing of this operation can be made invalid
            except (Exception, BaseExceptionGroup) as exc:  # recorded, reported together below
                run.failures.append(f"{operation.label} [{mode.value}]: {exc}"[:2000])


@pytest.fixture(scope="module")
async def fuzz_suite(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Suite]:
    async with running_suite(tmp_path_factory.mktemp("fuzz"), rate_limit_per_s=0) as suite:
        yield suite


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("target", TARGETS)
async def test_fuzz(
    fuzz_suite: Suite, target: str, caller: str, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = asyncio.get_running_loop()
    headers = caller_headers(fuzz_suite, caller)
    run = Run()
    if target == "gateway":
        # The gateway's own OpenAPI: its paths, purposes, filtered answers and problems.
        documents = [("gateway", (await fuzz_suite.client.get("/openapi.json")).json())]
    else:
        documents = [(target, (await fuzz_suite.clients[target].get("/openapi.json")).json())]
    for name, spec in documents:
        schema = schemathesis.openapi.from_dict(spec)
        client = fuzz_suite.client if name == "gateway" else fuzz_suite.clients[name]

        def send(case: Case[Any], client: httpx.AsyncClient = client) -> httpx.Response:
            kwargs = to_httpx(case.as_transport_kwargs(base_url="http://app", headers=headers))
            kwargs["url"] = kwargs["url"].removeprefix("http://app")
            future = asyncio.run_coroutine_threadsafe(client.request(**kwargs), loop)
            return future.result(timeout=60)

        await asyncio.to_thread(fuzz_operations, schema, send, run)
    with capsys.disabled():  # the tally, even with output captured
        print(
            f"\nfuzz {target} as {caller}: {run.operations} operations, {run.requests} "
            f"requests, statuses {dict(sorted(run.statuses.items()))}"
        )
    assert run.operations > 0 and run.requests >= run.operations
    assert not run.failures, "\n\n".join(run.failures)
