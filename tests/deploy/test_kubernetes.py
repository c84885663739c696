"""deploy/k8s, rendered and validated offline: kustomize renders the production overlay and
every object is checked against the Kubernetes API schemas that the kubernetes-validate
package ships (no cluster runs here). Strimzi's kinds have no schema there; they are read
for what the deployment needs of them."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa

from kit.payment_signature import private_key_pem, public_key_pem
from kit.settings import REPO_ROOT
from services.identity.config import Settings
from services.identity.mini_program.platform import platforms_from_settings
from services.identity.sms.sender import HttpSmsSender, sms_sender_from_settings
from services.identity.verification.authority import SandboxAuthority, authority_from_settings

OVERLAY = REPO_ROOT / "deploy" / "k8s" / "overlays" / "production"
KUBERNETES_VERSION = "1.32.0"
STRIMZI = "kafka.strimzi.io/v1beta2"
SERVICES = ("identity", "orders", "consent", "transfer")


def _kustomize() -> list[str]:
    """kustomize (.ci/run installs it from the Go module proxy), else kubectl's built-in one."""
    go_bin = Path(os.environ.get("GOPATH", Path.home() / "go")) / "bin"
    found = shutil.which("kustomize") or shutil.which("kustomize", path=str(go_bin))
    if found:
        return [found, "build"]
    kubectl = shutil.which("kubectl")
    assert kubectl, "kustomize is needed: go install sigs.k8s.io/kustomize/kustomize/v5"
    return [kubectl, "kustomize"]


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    result = subprocess.run(
        [*_kustomize(), "--load-restrictor", "LoadRestrictionsNone", str(OVERLAY)],
        capture_output=True,
        text=True,
        check=True,
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _objects(rendered: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in rendered if doc["kind"] == kind}


def test_every_object_is_valid_against_the_kubernetes_schemas(
    rendered: list[dict[str, Any]],
) -> None:
    checked = 0
    for doc in rendered:
        if doc["apiVersion"] == STRIMZI:
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked == len(rendered) - 3


def test_apps_are_probed_resourced_and_protected_from_disruption(
    rendered: list[dict[str, Any]],
) -> None:
    deployments = _objects(rendered, "Deployment")
    assert set(deployments) == {*SERVICES, "gateway"}
    budgets = _objects(rendered, "PodDisruptionBudget")
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["resources"]["requests"]
        assert container["args"] == [name]
        assert budgets[name]["spec"]["minAvailable"] == 1
        if name != "gateway":
            assert deployment["spec"]["replicas"] == 3
        else:  # readiness on the operations port, which the Service does not expose
            assert container["readinessProbe"]["httpGet"]["port"] == "ops"
            assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
                "http": 8000,
                "ops": 8010,
            }
    autoscaler = _objects(rendered, "HorizontalPodAutoscaler")["gateway"]
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == "gateway"
    assert _objects(rendered, "Job")["migrate"]["spec"]["template"]["spec"]["containers"][0][
        "args"
    ] == ["migrate"]


def test_no_secret_is_in_the_repository(rendered: list[dict[str, Any]]) -> None:
    assert _objects(rendered, "Secret") == {}
    settings = next(
        doc
        for doc in rendered
        if doc["kind"] == "ConfigMap" and "privacy-settings" in doc["metadata"]["name"]
    )
    secrets = ("PASSWORD", "MASTER_KEY", "SECRET")
    assert not [key for key in settings["data"] if key.endswith(secrets)]
    assert settings["data"]["PRIVACY_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert settings["data"]["PRIVACY_KAFKA_REPLICATION_FACTOR"] == "3"
    assert settings["data"]["PRIVACY_KAFKA_MIN_INSYNC_REPLICAS"] == "2"


def test_only_the_gateway_is_reachable_from_outside(rendered: list[dict[str, Any]]) -> None:
    policies = _objects(rendered, "NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and "ingress" not in deny
    services_rule = policies["services-from-the-suite"]["spec"]
    assert services_rule["podSelector"]["matchExpressions"][0]["values"] == list(SERVICES)
    sources = services_rule["ingress"][0]["from"]
    assert sources == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "privacy-backend"}}}
    ]
    gateway_rule = policies["gateway-from-anywhere"]["spec"]
    assert gateway_rule["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "gateway"


def test_production_kafka_is_three_kraft_nodes_with_scram(rendered: list[dict[str, Any]]) -> None:
    strimzi = {doc["kind"]: doc for doc in rendered if doc["apiVersion"] == STRIMZI}
    assert set(strimzi) == {"Kafka", "KafkaNodePool", "KafkaUser"}
    assert strimzi["KafkaNodePool"]["spec"]["replicas"] == 3
    listener = strimzi["Kafka"]["spec"]["kafka"]["listeners"][0]
    assert listener["tls"] is True and listener["authentication"]["type"] == "scram-sha-512"
    assert strimzi["Kafka"]["spec"]["kafka"]["config"]["min.insync.replicas"] == 2


def test_the_gateway_never_gets_the_master_key(rendered: list[dict[str, Any]]) -> None:
    deployments = _objects(rendered, "Deployment")
    pod = deployments["gateway"]["spec"]["template"]["spec"]
    for container in (*pod["containers"], *pod.get("initContainers", [])):
        assert not [env for env in container.get("env", []) if "MASTER_KEY" in env["name"]]
    [secrets] = [volume for volume in pod["volumes"] if volume["name"] == "secrets"]
    assert [item["key"] for item in secrets["secret"]["items"]] == ["gateway_database_url"]
    for name in SERVICES:
        service = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert "PRIVACY_MASTER_KEY_FILE" in {env["name"] for env in service["env"]}, name


def test_identity_starts_on_the_real_providers_not_the_stand_ins(
    rendered: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Identity's production start refuses its stand-ins: the settings name every provider
    (placeholders the operator replaces) and the pod reads their secrets from files."""
    settings_map = next(
        doc
        for doc in rendered
        if doc["kind"] == "ConfigMap" and "privacy-settings" in doc["metadata"]["name"]
    )
    for name, value in settings_map["data"].items():
        if name.startswith(("IDENTITY_", "PRIVACY_ENVIRONMENT")):
            monkeypatch.setenv(name, value)
    [container] = _objects(rendered, "Deployment")["identity"]["spec"]["template"]["spec"][
        "containers"
    ]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pems = {"PRIVATE_KEY": private_key_pem(key), "PUBLIC_KEY": public_key_pem(key)}
    files = [env["name"] for env in container["env"] if env["name"].endswith("_FILE")]
    for name in files:
        if "DATABASE_URL" not in name and "MASTER_KEY" not in name:
            value = next((pem for kind, pem in pems.items() if kind in name), "a-secret")
            monkeypatch.setenv(name.removesuffix("_FILE"), value)
    monkeypatch.setenv("PRIVACY_MASTER_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    settings = Settings()
    assert settings.environment == "production"
    assert isinstance(sms_sender_from_settings(settings), HttpSmsSender)
    assert not isinstance(authority_from_settings(settings), SandboxAuthority)
    assert set(platforms_from_settings(settings)) == {"wechat", "alipay"}
