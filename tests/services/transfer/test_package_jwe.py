"""Transfer packages are a standard JWE that a second, independent implementation opens
(issue 23 item 11): README's recipient-side example (jwcrypto), taken from README itself,
decrypts packages made by the service (joserfc) for an X25519 and an RSA key, and refuses
an altered one."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any, Literal

import pytest

from kit.settings import REPO_ROOT
from services.transfer.transfers.package import encrypt_package, load_recipient_key
from tests.services.transfer.conftest import key_pair

HEADER = {"transfer_id": "trf_abc", "recipient_id": "rcp_abc", "waybill_id": "wb_abcdef"}
PLAINTEXT = {"waybill_id": "wb_abcdef", "fields": {"consignee_name": "张**"}}

Opener = Callable[[str, bytes], tuple[dict[str, Any], dict[str, Any]]]


def readme_example() -> Opener:
    """The ``open_package`` of README's jwcrypto block, run as a reader would paste it."""
    readme = (REPO_ROOT / "README.md").read_text()
    [block] = [
        code
        for code in re.findall(r"```python\n(.*?)```", readme, re.DOTALL)
        if "from jwcrypto import" in code
    ]
    namespace: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), namespace)
    opener: Opener = namespace["open_package"]
    return opener


@pytest.mark.obligation("OB-4-4")
@pytest.mark.parametrize("kind", ["x25519", "rsa"])
def test_readmes_jwcrypto_example_opens_what_the_service_sealed(
    kind: Literal["x25519", "rsa"],
) -> None:
    keys = key_pair(kind)
    recipient = load_recipient_key(keys.public_pem)
    package = encrypt_package(
        json.dumps(PLAINTEXT, ensure_ascii=False).encode(), key=recipient, header=HEADER
    )
    assert package.count(".") == 4  # compact serialization: five parts
    open_package = readme_example()
    header, plaintext = open_package(package, keys.private_pem)
    assert plaintext == PLAINTEXT
    assert header["alg"] == ("ECDH-ES+A256KW" if kind == "x25519" else "RSA-OAEP-256")
    assert header["enc"] == "A256GCM"
    assert header["kid"] == recipient.fingerprint
    assert {name: header[name] for name in HEADER} == HEADER
    # another key opens nothing; a header moved to another package does not authenticate
    with pytest.raises(Exception):  # noqa: B017 (jwcrypto's InvalidJWEData)
        open_package(package, key_pair(kind).private_pem)
    moved = base64.urlsafe_b64encode(
        json.dumps({**header, "waybill_id": "wb_other"}).encode()
    ).rstrip(b"=")
    with pytest.raises(Exception):  # noqa: B017
        open_package(".".join([moved.decode(), *package.split(".")[1:]]), keys.private_pem)
