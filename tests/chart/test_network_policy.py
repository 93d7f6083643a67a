"""NetworkPolicies: the controller reaches only Triton, DNS and configured extras; Triton accepts only the
controller (and metrics scrapers)."""

from __future__ import annotations

import pytest

from tests.chart.conftest import render, render_scenario

pytestmark = pytest.mark.chart

CONTROLLER = {"app.kubernetes.io/name": "certa", "app.kubernetes.io/instance": "rel",
              "app.kubernetes.io/component": "controller"}
TRITON = {**CONTROLLER, "app.kubernetes.io/component": "triton"}
TEST_POD = {**CONTROLLER, "app.kubernetes.io/component": "test"}
DNS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
       "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}


def controller_policy(*sets: str, **kwargs: object) -> dict:
    return render("networkPolicy.enabled=true", *sets, **kwargs).get("NetworkPolicy", "rel-certa")["spec"]


def test_off_by_default() -> None:
    assert not render().of_kind("NetworkPolicy")


def test_controller_egress_is_dns_and_triton_only() -> None:
    spec = controller_policy()
    assert spec["podSelector"] == {"matchLabels": CONTROLLER}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    dns, triton = spec["egress"]
    assert dns == {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}], "to": [DNS]}
    assert triton == {"ports": [{"port": 8001, "protocol": "TCP"}], "to": [{"podSelector": {"matchLabels": TRITON}}]}


def test_controller_ingress_defaults_to_the_namespace_and_the_test_pod() -> None:
    (grpc,) = controller_policy()["ingress"]
    assert grpc["ports"] == [{"port": 50051, "protocol": "TCP"}]
    assert grpc["from"] == [{"podSelector": {}}, {"podSelector": {"matchLabels": TEST_POD}}]


def test_controller_ingress_from_selected_namespaces_and_pods() -> None:
    (grpc,) = render_scenario("network-policy").get("NetworkPolicy", "rel-certa")["spec"]["ingress"]
    assert grpc["from"] == [{"namespaceSelector": {"matchLabels": {"team": "apps"}}},
                            {"podSelector": {"matchLabels": TEST_POD}}]


def test_metrics_ingress_only_with_service_monitor() -> None:
    rendered = render_scenario("service-monitor")
    _, metrics = rendered.get("NetworkPolicy", "rel-certa")["spec"]["ingress"]
    assert metrics == {"ports": [{"port": 9464, "protocol": "TCP"}],
                       "from": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]}
    assert len(controller_policy("networkPolicy.ingress.metricsFrom[0].podSelector.matchLabels.a=b")["ingress"]) == 1


def test_external_triton_egress_uses_the_url_port_and_peers() -> None:
    spec = render_scenario("triton-off").get("NetworkPolicy", "rel-certa")["spec"]
    # No peers given: the Triton port to any destination.
    assert spec["egress"][1] == {"ports": [{"port": 443, "protocol": "TCP"}]}
    spec = controller_policy("triton.enabled=false", "triton.externalUrl=triton://triton.inference.svc",
                             "networkPolicy.egress.triton[0].namespaceSelector.matchLabels.name=inference")
    assert spec["egress"][1] == {"ports": [{"port": 8001, "protocol": "TCP"}],
                                 "to": [{"namespaceSelector": {"matchLabels": {"name": "inference"}}}]}


def test_extra_egress_rules_are_appended() -> None:
    spec = controller_policy("networkPolicy.egress.extra[0].to[0].ipBlock.cidr=10.1.0.0/16",
                             "networkPolicy.egress.extra[0].ports[0].port=443")
    assert len(spec["egress"]) == 3
    assert spec["egress"][2] == {"to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}], "ports": [{"port": 443}]}


def test_triton_accepts_only_the_controller_and_scrapers() -> None:
    spec = render_scenario("service-monitor").get("NetworkPolicy", "rel-certa-triton")["spec"]
    assert spec["podSelector"] == {"matchLabels": TRITON}
    assert spec["policyTypes"] == ["Ingress"]
    grpc, metrics = spec["ingress"]
    assert grpc == {"ports": [{"port": 8001, "protocol": "TCP"}],
                    "from": [{"podSelector": {"matchLabels": CONTROLLER}}]}
    assert metrics["ports"] == [{"port": 8002, "protocol": "TCP"}]
    assert not render_scenario("triton-off").find("NetworkPolicy", "rel-certa-triton")
