"""`helm lint --strict` passes with the defaults plus an authentication method (the chart refuses to render without
one), every toggle, and the values files of deploy/values/."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.contract.chart.conftest import CHART, DEFAULT_AUTH, VALUES_DIR, helm
from tests.contract.chart.test_controller import CONTROLLER_VARIABLES

pytestmark = pytest.mark.chart

# Helm 4's lint logs the templates' `fail` calls without failing, so it would pass the bare defaults (which
# `helm template` refuses: test_security.py) and cannot tell gpu.yaml's Certificate from a missing cert-manager API
# (it has no --api-versions); the cases set an authentication method so that the manifests linted are real ones.
AUTH = [arg for assignment in DEFAULT_AUTH for arg in ("--set", assignment)]

LINT_CASES = {
    "defaults": [],
    "all-toggles": [
        "--set",
        "autoscaling.enabled=true",
        "--set",
        "triton.autoscaling.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "serviceMonitor.enabled=true",
    ],
    "keda": ["--set", "keda.enabled=true"],
    "triton-off": ["--set", "triton.enabled=false", "--set", "triton.externalUrl=triton://triton.inference.svc:8001"],
    "redis-external-tls-cluster": [
        "--set",
        "redis.bundled.enabled=false",
        "--set",
        "redis.external.url=rediss://redis.example.internal:6380/0",
        "--set",
        "redis.external.existingSecret=certa-redis",
        "--set",
        "redis.external.cluster=true",
        "--set",
        "redis.external.tls.enabled=true",
        "--set",
        "redis.external.tls.existingSecret=certa-redis-tls",
        "--set",
        "networkPolicy.enabled=true",
    ],
    "tls-mtls-quotas": [
        "--set",
        "tls.enabled=true",
        "--set",
        "tls.existingSecret=certa-tls",
        "--set",
        "tls.clientAuth=true",
        "--set",
        "auth.clientCert=true",
        "--set",
        "quotas.default.maxInFlight=32",
        "--set",
        "quotas.tenants.acme.logContent=true",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "networkPolicy.ingress.namespaces={apps}",
        "--set",
        "otel.endpoint=http://otel-collector.monitoring.svc:4317",
    ],
    "operations": [
        "--set",
        "controller.httpPort=8080",
        "--set",
        "service.headless.enabled=true",
        "--set",
        "grafana.dashboard.enabled=true",
        "--set",
        "controller.extraEnv[0].name=HTTPS_PROXY",
        "--set",
        "controller.extraEnv[0].value=http://proxy:3128",
        "--set",
        "controller.image.digest=sha256:" + "ab" * 32,
    ],
    "jwt": [
        "--set",
        "auth.jwt.jwks.existingConfigMap=certa-jwks",
        "--set",
        "auth.jwt.issuer=https://issuer.example",
        "--set",
        "auth.jwt.audience=certa",
    ],
}
# The values files bring their own authentication.
OWN_AUTH = {
    "dev": ["-f", str(VALUES_DIR / "dev.yaml")],
    "gpu": ["-f", str(VALUES_DIR / "gpu.yaml")],
    "auth-disabled": ["--set", "auth.disabled=true"],
}


@pytest.mark.parametrize("case", sorted([*LINT_CASES, *OWN_AUTH]))
def test_lint_strict(case: str) -> None:
    args = OWN_AUTH[case] if case in OWN_AUTH else [*AUTH, *LINT_CASES[case]]
    result = helm("lint", "--strict", str(CHART), *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


def test_lint_fails_on_bad_values() -> None:
    result = helm("lint", "--strict", str(CHART), *AUTH, "--set", "controller.replicaCount=0")
    assert result.returncode != 0
    assert "/controller/replicaCount" in result.stdout + result.stderr
    result = helm("lint", "--strict", str(CHART), *AUTH, "--set", "redis.bundled.enabled=false")
    assert result.returncode != 0
    assert "/redis/external/url" in result.stdout + result.stderr


def test_every_value_is_documented() -> None:
    """Every value of values.yaml has a comment right above it or above one of its parent keys."""
    key_line = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z][\w.-]*):(?P<value>.*)$")
    path: list[tuple[int, str, bool]] = []  # (indent, key, commented) of the enclosing keys
    undocumented = []
    previous = ""
    for line in (CHART / "values.yaml").read_text().splitlines():
        match = key_line.match(line)
        if match:
            indent = len(match["indent"])
            while path and path[-1][0] >= indent:
                path.pop()
            path.append((indent, match["key"], previous.lstrip().startswith("#")))
            is_leaf = match["value"].strip() != ""
            if is_leaf and not any(commented for _, _, commented in path):
                undocumented.append(".".join(key for _, key, _ in path))
        if line.strip():
            previous = line
    assert not undocumented, undocumented


def test_readme_values_table_covers_every_value() -> None:
    """Each value (or a map holding it) has a row in the README's values table; every variable is mapped."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    rows = set(re.findall(r"^\| `([\w.]+)` \|", readme, flags=re.MULTILINE))

    def leaves(prefix: tuple[str, ...], value: object) -> list[tuple[str, ...]]:
        if isinstance(value, dict) and value:
            return [leaf for key, child in value.items() for leaf in leaves((*prefix, key), child)]
        return [prefix]

    missing = [
        ".".join(path)
        for path in leaves((), values)
        if not any(".".join(path[:depth]) in rows for depth in range(1, len(path) + 1))
    ]
    assert not missing, missing
    for variable in CONTROLLER_VARIABLES:
        assert f"`{variable}`" in readme, variable


def test_notes_tell_how_to_call_the_service() -> None:
    result = helm(
        "install",
        "certa",
        str(CHART),
        "--namespace",
        "ml",
        "--dry-run=client",
        *AUTH,
        "--set",
        "autoscaling.enabled=true",
        "--set",
        "triton.autoscaling.enabled=true",
    )
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "kubectl -n ml port-forward svc/certa 50051:50051" in notes
    assert "localhost:50051 certa.v1.ReasoningService/Solve" in notes
    assert "grpc.health.v1.Health/Check" in notes
    assert "helm test certa -n ml" in notes
    assert "State store (CERTA_REDIS_URL): redis://certa-redis:6379/0" in notes
    assert "PersistentVolumeClaim\n  data-certa-redis-0" in notes
    assert "certa_requests_in_flight and nv_inference_queue_duration_us" in notes
