"""Every rendered object of every scenario is valid for every Kubernetes version the chart claims.

Built-in kinds are validated with kubernetes-validate in strict mode (unknown fields are errors); custom resources
(KEDA ScaledObject, Prometheus Operator ServiceMonitor and PrometheusRule, cert-manager Certificate, Gateway API
GRPCRoute and HTTPRoute) have no schema there and get shape checks instead (the Certificate's in test_security.py,
the PrometheusRule's and the routes' in test_operations.py).
"""

from __future__ import annotations

import json
import re

import kubernetes_validate
import pytest

from tests.contract.chart.conftest import CHART, KUBE_VERSIONS, SCENARIOS, render, render_error, render_scenario

pytestmark = pytest.mark.chart

CUSTOM_KINDS = {"ScaledObject", "ServiceMonitor", "Certificate", "PrometheusRule", "GRPCRoute", "HTTPRoute"}
# (object, version) pairs already validated: scenarios share most objects, and validation dominates the run time.
_VALID: set[tuple[str, str]] = set()


def validate(obj: dict, version: str) -> None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        raise AssertionError(
            f"{obj['kind']}/{obj['metadata']['name']} invalid for Kubernetes {version} at "
            f"{'/'.join(map(str, error.path))}: {error.message}"
        ) from None


def test_chart_claims_a_lower_bound_only() -> None:
    text = (CHART / "Chart.yaml").read_text()
    assert 'kubeVersion: ">=1.29.0-0"' in text
    assert KUBE_VERSIONS[0] == "1.29.0"


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_objects_are_valid(scenario: str, version: str) -> None:
    rendered = render_scenario(scenario, "--kube-version", version)
    for obj in rendered.objects:
        key = (json.dumps(obj, sort_keys=True), version)
        if obj["kind"] in CUSTOM_KINDS or key in _VALID:
            continue
        validate(obj, version)
        _VALID.add(key)


def test_versions_below_the_lower_bound_are_refused() -> None:
    assert "incompatible with Kubernetes" in render_error(extra=("--kube-version", "1.28.0"))


@pytest.mark.parametrize("version", ["1.38.0", "1.40.3", "2.0.0"])
def test_versions_past_the_validated_ones_render(version: str) -> None:
    assert render(extra=("--kube-version", version)).controller["kind"] == "Deployment"


def test_validator_catches_a_bad_object() -> None:
    """The validation above is real: a Deployment with a wrong field type or an unknown field is rejected."""
    deployment = render().controller
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(AssertionError, match="spec/replicas"):
        validate(broken, KUBE_VERSIONS[-1])
    unknown = json.loads(json.dumps(deployment))
    unknown["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["serviceName"] = "x"
    with pytest.raises(AssertionError):
        validate(unknown, KUBE_VERSIONS[0])


def test_scaled_object_shape() -> None:
    rendered = render_scenario("keda")
    (scaled,) = rendered.of_kind("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "rel-certa"}
    assert spec["minReplicaCount"] == 2 and spec["maxReplicaCount"] == 10
    triggers = {trigger["type"]: trigger for trigger in spec["triggers"]}
    assert triggers["cpu"] == {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}
    prometheus = triggers["prometheus"]["metadata"]
    # Selected by the target labels every scrape configuration sets, not by `service` (only a ServiceMonitor adds it).
    assert prometheus["query"] == (
        'sum(certa_requests_in_flight{namespace="ml", pod=~"rel-certa-[a-z0-9]{1,10}-[a-z0-9]{5}"})'
    )
    assert prometheus["threshold"] == "32" and prometheus["serverAddress"].startswith("http")
    # KEDA owns the replica count: the Deployment leaves it unset, and no HPA competes.
    assert "replicas" not in rendered.controller["spec"]
    assert not rendered.of_kind("HorizontalPodAutoscaler")


def test_service_monitor_shape() -> None:
    rendered = render_scenario("service-monitor")
    monitors = {obj["metadata"]["name"]: obj for obj in rendered.of_kind("ServiceMonitor")}
    assert set(monitors) == {"rel-certa", "rel-certa-triton"}
    for name, monitor in monitors.items():
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        service = rendered.get("Service", name)
        # The monitor selects its Service and scrapes a port the Service has.
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ml"]}
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
        assert re.fullmatch(r"\d+s", endpoint["interval"]) and re.fullmatch(r"\d+s", endpoint["scrapeTimeout"])
    metrics_port = next(p for p in rendered.get("Service", "rel-certa")["spec"]["ports"] if p["name"] == "metrics")
    assert metrics_port["port"] == 9464


def test_custom_resources_are_only_the_known_kinds() -> None:
    """Every object outside kubernetes-validate's built-in kinds is one of CUSTOM_KINDS, checked by shape."""
    for scenario in SCENARIOS:
        for obj in render_scenario(scenario).objects:
            group = obj["apiVersion"].rpartition("/")[0]
            if "." in group and not group.endswith(".k8s.io"):
                assert obj["kind"] in CUSTOM_KINDS, (scenario, obj["kind"])


def test_service_monitor_needs_the_prometheus_operator_api() -> None:
    rendered = render("serviceMonitor.enabled=true")
    assert not rendered.of_kind("ServiceMonitor")
