"""Rendering the Helm chart with a real helm binary (fetched once by deploy/tools/get-helm.sh).

`render(...)` runs `helm template` and returns the objects as dicts; `render_error(...)` runs it expecting a
failure and returns helm's message. Both are cached per argument list: rendering is cheap, but many tests look at
the same scenarios.

The chart refuses to render without an authentication method (so does the controller refuse to start), so both add
`DEFAULT_AUTH` (API keys from the Secret `API_KEYS_SECRET`) to the assignments unless given another `auth`: pass
`auth=()` for the chart's bare defaults, or when a values file brings its own.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "certa"
VALUES_DIR = ROOT / "deploy" / "values"
GET_HELM = ROOT / "deploy" / "tools" / "get-helm.sh"
RELEASE = "rel"
NAMESPACE = "ml"
MONITORING_API = "monitoring.coreos.com/v1"
CERT_MANAGER_API = "cert-manager.io/v1"
GATEWAY_API = "gateway.networking.k8s.io/v1"
DIGEST = "sha256:" + "0123456789abcdef" * 4
API_KEYS_SECRET = "certa-api-keys"
DEFAULT_AUTH = (f"auth.apiKeys.existingSecret={API_KEYS_SECRET}",)

# The Kubernetes minors the chart is validated against: from its lower bound (Chart.yaml kubeVersion ">=1.29.0-0") to
# the newest kubernetes-validate has schemas for.
KUBE_VERSIONS = tuple(f"1.{minor}.0" for minor in range(29, 38))


@functools.cache
def helm_binary() -> str:
    result = subprocess.run(["bash", str(GET_HELM)], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"deploy/tools/get-helm.sh failed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    home = Path.home() / ".cache" / "certa" / "helm"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=120, env=env)


def _template_args(values: Iterable[str], sets: Iterable[str], extra: Iterable[str]) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for name in values:
        args += ["-f", str(VALUES_DIR / name)]
    for assignment in sets:
        args += ["--set", assignment]
    return args + list(extra)


@dataclass(frozen=True)
class Rendered:
    objects: tuple[dict, ...]

    def of_kind(self, kind: str) -> list[dict]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def get(self, kind: str, name: str) -> dict:
        matches = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        names = [obj["metadata"]["name"] for obj in self.of_kind(kind)]
        assert len(matches) == 1, f"expected one {kind}/{name}, got {names}"
        return matches[0]

    def find(self, kind: str, name: str) -> dict | None:
        matches = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        return matches[0] if matches else None

    @property
    def kinds(self) -> list[str]:
        return sorted(obj["kind"] for obj in self.objects)

    # The release's objects, by the names the chart gives them.
    @property
    def controller(self) -> dict:
        return self.get("Deployment", f"{RELEASE}-certa")

    @property
    def controller_container(self) -> dict:
        return self.controller["spec"]["template"]["spec"]["containers"][0]

    @property
    def config(self) -> dict[str, str]:
        return self.get("ConfigMap", f"{RELEASE}-certa")["data"]

    @property
    def triton(self) -> dict | None:
        return self.find("Deployment", f"{RELEASE}-certa-triton")

    @property
    def redis(self) -> dict | None:
        return self.find("StatefulSet", f"{RELEASE}-certa-redis")


@functools.cache
def _render(values: tuple[str, ...], sets: tuple[str, ...], extra: tuple[str, ...]) -> Rendered:
    result = helm(*_template_args(values, sets, extra))
    if result.returncode != 0:
        raise AssertionError(f"helm template failed ({values}, {sets}, {extra}):\n{result.stderr}")
    return Rendered(tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc))


def render(
    *sets: str, values: Iterable[str] = (), extra: Iterable[str] = (), auth: Iterable[str] = DEFAULT_AUTH
) -> Rendered:
    """`helm template` with `--set` assignments (after `auth`'s), values files from deploy/values/ and extra flags."""
    return _render(tuple(values), (*auth, *sets), tuple(extra))


@functools.cache
def _render_error(values: tuple[str, ...], sets: tuple[str, ...], extra: tuple[str, ...]) -> str:
    result = helm(*_template_args(values, sets, extra))
    assert result.returncode != 0, f"helm template accepted {sets} {extra}"
    return result.stderr


def render_error(
    *sets: str, values: Iterable[str] = (), extra: Iterable[str] = (), auth: Iterable[str] = DEFAULT_AUTH
) -> str:
    """`helm template` expected to fail: its error message."""
    return _render_error(tuple(values), (*auth, *sets), tuple(extra))


# Scenarios rendered and validated against every Kubernetes version: every toggle of the chart.
SCENARIOS: dict[str, dict] = {
    "defaults": {},
    "autoscaling": {"sets": ("autoscaling.enabled=true", "triton.autoscaling.enabled=true")},
    "keda": {"sets": ("keda.enabled=true",)},
    "pdb-off": {"sets": ("pdb.enabled=false",)},
    "pdb-min-available": {"sets": ("pdb.minAvailable=50%",)},
    "network-policy": {
        "sets": ("networkPolicy.enabled=true", "networkPolicy.ingress.from[0].namespaceSelector.matchLabels.team=apps"),
    },
    "service-monitor": {
        "sets": (
            "serviceMonitor.enabled=true",
            "networkPolicy.enabled=true",
            "networkPolicy.ingress.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring",
        ),
        "extra": ("--api-versions", MONITORING_API),
    },
    "triton-off": {
        "sets": (
            "triton.enabled=false",
            "triton.externalUrl=triton+tls://triton.inference.svc:443",
            "networkPolicy.enabled=true",
        ),
    },
    "triton-hostpath": {
        "sets": ("triton.modelRepository.type=hostPath", "triton.modelRepository.hostPath=/data/models"),
    },
    "triton-volume": {
        "sets": (
            "triton.modelRepository.type=volume",
            "triton.modelRepository.volume.nfs.server=nfs.example",
            "triton.modelRepository.volume.nfs.path=/models",
        ),
    },
    "existing-secret": {"sets": ("controller.existingSecret=certa-backends",)},
    "observability": {
        "sets": (
            "metrics.enabled=true",
            "otel.endpoint=http://otel-collector.monitoring.svc:4317",
            "otel.tracesSampler=parentbased_traceidratio",
            "otel.tracesSamplerArg=0.25",
            "otel.resourceAttributes.team=ml",
            "networkPolicy.enabled=true",
            "networkPolicy.ingress.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring",
        ),
    },
    "redis-existing-secret": {
        "sets": (
            "redis.bundled.auth.existingSecret=certa-redis",
            "redis.bundled.auth.passwordKey=password",
            "redis.bundled.persistence.storageClass=fast-ssd",
            "networkPolicy.enabled=true",
        ),
    },
    "redis-external": {
        "sets": (
            "redis.bundled.enabled=false",
            "redis.external.url=redis://redis.data.svc:6379/0",
            "redis.external.existingSecret=certa-redis",
            "redis.external.passwordKey=password",
            "networkPolicy.enabled=true",
            "networkPolicy.egress.redis.to[0].ipBlock.cidr=10.20.0.0/16",
        ),
    },
    "redis-external-tls": {
        "sets": (
            "redis.bundled.enabled=false",
            "redis.external.url=rediss://redis.example.internal:6380/1",
            "redis.external.existingSecret=certa-redis",
            "redis.external.username=certa",
            "redis.external.tls.enabled=true",
            "redis.external.tls.existingSecret=certa-redis-tls",
            "redis.external.tls.certKey=tls.crt",
            "redis.external.tls.keyKey=tls.key",
            "networkPolicy.enabled=true",
        ),
    },
    "redis-cluster": {
        "sets": (
            "redis.bundled.enabled=false",
            "redis.external.url=redis://redis-cluster.data.svc:7000/0",
            "redis.external.cluster=true",
            "networkPolicy.enabled=true",
            "networkPolicy.egress.redis.ports={7000,7001,7002}",
        ),
    },
    # Security: TLS (an existing Secret, or cert-manager's with mutual TLS), every authentication method, quotas.
    "tls-existing-secret": {
        "sets": ("tls.enabled=true", "tls.existingSecret=certa-tls", "networkPolicy.enabled=true"),
    },
    "tls-cert-manager-mtls": {
        "sets": (
            "tls.enabled=true",
            "tls.certManager.enabled=true",
            "tls.certManager.issuerRef.name=certa-ca",
            "tls.clientAuth=true",
            "auth.clientCert=true",
            "networkPolicy.enabled=true",
        ),
        "extra": ("--api-versions", CERT_MANAGER_API),
    },
    "tls-client-ca-secret": {
        "sets": (
            "tls.enabled=true",
            "tls.existingSecret=certa-tls",
            "tls.clientAuth=true",
            "tls.clientCaSecret=client-ca",
            "tls.clientCaKey=bundle.pem",
        ),
    },
    "auth-jwt-secret": {
        "sets": (
            "auth.jwt.jwks.existingSecret=certa-jwks",
            "auth.jwt.issuer=https://issuer.example",
            "auth.jwt.audience=certa",
            "auth.jwt.tenantClaim=org",
        ),
        "auth": (),
    },
    "auth-jwt-configmap": {
        "sets": (
            "auth.jwt.jwks.existingConfigMap=certa-jwks",
            "auth.jwt.jwks.key=keys.json",
            "auth.jwt.issuer=https://issuer.example",
            "auth.jwt.audience=certa",
        ),
    },
    "auth-disabled": {"sets": ("auth.disabled=true",), "auth": ()},
    "quotas": {
        "sets": (
            "quotas.default.maxInFlight=32",
            "quotas.default.tokensPerMinute=200000",
            "quotas.tenants.acme.tokensPerMinute=100000",
            "quotas.tenants.acme.logContent=true",
            "quotas.tenants.beta-2.maxBatchSize=8",
            "quotas.default.pools.default.samplesPerSecond=20",
            "quotas.default.pools.default.burst=400",
        ),
        # --set makes 2.5 a string: fractional pool settings go as JSON.
        "extra": (
            "--set-json",
            'quotas.tenants.acme.pools={"chat": {"samplesPerSecond": 2.5, "burst": 60, "maxWaitS": 1.5, '
            '"exploration": 0.25}}',
        ),
    },
    "network-policy-namespaces": {
        "sets": (
            "networkPolicy.enabled=true",
            "networkPolicy.ingress.namespaces={apps,batch}",
            "networkPolicy.ingress.podLabels.role=certa-client",
            "otel.endpoint=http://otel-collector.monitoring.svc:4317",
            "networkPolicy.egress.otlp.to[0].namespaceSelector.matchLabels.name=monitoring",
        ),
    },
    # Operations: load spreading (headless Service, Gateway routes, the HTTP port), alerts, the dashboard, digests,
    # extra environment.
    "load-spreading": {
        "sets": (
            "controller.httpPort=8080",
            "service.headless.enabled=true",
            "gateway.grpcRoute.enabled=true",
            "gateway.grpcRoute.parentRefs[0].name=public",
            "gateway.grpcRoute.parentRefs[0].namespace=gateways",
            "gateway.grpcRoute.hostnames={certa.example.com}",
            "gateway.httpRoute.enabled=true",
            "gateway.httpRoute.parentRefs[0].name=public",
            "gateway.httpRoute.parentRefs[0].namespace=gateways",
            "gateway.httpRoute.parentRefs[0].sectionName=https",
            "controller.config.grpcMaxConnectionAgeSeconds=120",
            "controller.config.grpcMaxConnectionAgeGraceSeconds=4000",
            "networkPolicy.enabled=true",
        ),
        "extra": ("--api-versions", GATEWAY_API),
    },
    "load-spreading-tls": {
        "sets": (
            "tls.enabled=true",
            "tls.existingSecret=certa-tls",
            "controller.httpPort=8443",
            "service.headless.enabled=true",
            "metrics.enabled=true",
        ),
    },
    "prometheus-rule": {
        "sets": ("prometheusRule.enabled=true", "prometheusRule.labels.release=kube-prometheus-stack"),
        "extra": ("--api-versions", MONITORING_API),
    },
    "grafana-dashboard": {
        "sets": ("grafana.dashboard.enabled=true", "grafana.dashboard.annotations.grafana_folder=Certa"),
    },
    "digests-and-extra-env": {
        "sets": (
            f"controller.image.digest={DIGEST}",
            f"triton.image.digest={DIGEST}",
            f"redis.bundled.image.digest={DIGEST}",
            "controller.extraEnv[0].name=HTTPS_PROXY",
            "controller.extraEnv[0].value=http://proxy:3128",
            "controller.extraEnvFrom[0].secretRef.name=certa-extra",
            "controller.preStopSleepSeconds=0",
        ),
    },
    "keda-without-service-monitor": {"sets": ("keda.enabled=true", "keda.cpuUtilization=0")},
    # The values files bring their own authentication.
    "dev": {"values": ("dev.yaml",), "auth": ()},
    "gpu": {
        "values": ("gpu.yaml",),
        "extra": ("--api-versions", MONITORING_API, "--api-versions", CERT_MANAGER_API),
        "auth": (),
    },
}


def render_scenario(name: str, *extra: str) -> Rendered:
    scenario = SCENARIOS[name]
    return render(
        *scenario.get("sets", ()),
        values=scenario.get("values", ()),
        extra=(*scenario.get("extra", ()), *extra),
        auth=scenario.get("auth", DEFAULT_AUTH),
    )
