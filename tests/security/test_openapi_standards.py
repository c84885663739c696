"""The services' OpenAPI documents say what each route really answers (issue 24 item 10),
checked with openapi-spec-validator and with schemathesis's own response validation of
real answers through the gateway.

- every document is valid OpenAPI and names the bearer access token in
  ``securitySchemes``; an operation needing a token lists it and documents its 401 and 403;
- 429 (rate limit) and, for operations with a body, 413 (body too large) are documented;
- the token endpoint documents its RFC 6749 answers (400, 401 with ``error``) and no 422.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from openapi_spec_validator import validate

from kit.auth import BEARER_SCHEME
from kit.testing import new_subject
from tests.security.conftest import SERVICES, Suite


async def documents(suite: Suite) -> dict[str, dict[str, Any]]:
    return {name: (await suite.clients[name].get("/openapi.json")).json() for name in SERVICES}


async def test_every_document_is_valid_and_names_the_bearer_token(suite: Suite) -> None:
    for name, spec in (await documents(suite)).items():
        validate(spec)  # openapi-spec-validator: the document as a whole
        schemes = spec["components"]["securitySchemes"]
        assert schemes[BEARER_SCHEME]["scheme"] == "bearer", name
        operations = [op for path in spec["paths"].values() for op in path.values()]
        secured = [op for op in operations if {BEARER_SCHEME: []} in op.get("security", [])]
        assert secured, f"{name} documents no operation needing a token"
        for operation in secured:
            assert {"401", "403"} <= set(operation["responses"]), operation["operationId"]
        for operation in operations:
            assert "429" in operation["responses"], operation["operationId"]
            if "requestBody" in operation:
                assert "413" in operation["responses"], operation["operationId"]


async def test_the_token_endpoint_documents_its_rfc_6749_answers(suite: Suite) -> None:
    spec = (await documents(suite))["identity"]
    responses = spec["paths"]["/oauth2/token"]["post"]["responses"]
    assert "422" not in responses
    for status in ("400", "401"):
        schema = responses[status]["content"]["application/json"]["schema"]
        ref = schema["$ref"].rsplit("/", 1)[-1]
        assert "error" in spec["components"]["schemas"][ref]["required"]


def operation(spec: dict[str, Any], method: str, path: str) -> Any:
    return schemathesis.openapi.from_dict(spec)[path][method]


@pytest.mark.parametrize(
    ("route", "caller", "form", "status"),
    [
        ("GET /accounts/me", None, None, 401),
        ("GET /partners", "user", None, 403),
        ("POST /oauth2/token", None, {"grant_type": "password"}, 400),
    ],
)
async def test_real_answers_through_the_gateway_conform_to_the_document(
    suite: Suite, route: str, caller: str | None, form: dict[str, str] | None, status: int
) -> None:
    method, path = route.split()
    spec = (await documents(suite))["identity"]
    headers = suite.user(new_subject()) if caller == "user" else {}
    answer = await suite.client.request(method, f"/identity{path}", headers=headers, data=form)
    assert answer.status_code == status, answer.text
    documented = operation(spec, method, path)
    assert str(status) in documented.definition.raw["responses"]
    documented.validate_response(answer)  # schemathesis: raises when it does not conform
