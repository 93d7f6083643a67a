"""NetworkPolicies: the controller reaches only Triton, Redis, DNS, the OTLP collector (when `otel.endpoint` is set)
and configured extras, and accepts calls only from the configured namespaces / pod labels (by default the release
namespace) and the test pod; Triton accepts only the controller (and metrics scrapers), the bundled Redis only the
controller."""

from __future__ import annotations

import pytest

from tests.contract.chart.conftest import render, render_scenario

pytestmark = pytest.mark.chart

CONTROLLER = {
    "app.kubernetes.io/name": "certa",
    "app.kubernetes.io/instance": "rel",
    "app.kubernetes.io/component": "controller",
}
TRITON = {**CONTROLLER, "app.kubernetes.io/component": "triton"}
REDIS = {**CONTROLLER, "app.kubernetes.io/component": "redis"}
TEST_POD = {**CONTROLLER, "app.kubernetes.io/component": "test"}
DNS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}


def controller_policy(*sets: str, **kwargs: object) -> dict:
    return render("networkPolicy.enabled=true", *sets, **kwargs).get("NetworkPolicy", "rel-certa")["spec"]


def test_off_by_default() -> None:
    assert not render().of_kind("NetworkPolicy")


def test_controller_egress_is_dns_triton_and_redis_only() -> None:
    spec = controller_policy()
    assert spec["podSelector"] == {"matchLabels": CONTROLLER}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    dns, triton, redis = spec["egress"]
    assert dns == {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}], "to": [DNS]}
    assert triton == {"ports": [{"port": 8001, "protocol": "TCP"}], "to": [{"podSelector": {"matchLabels": TRITON}}]}
    assert redis == {"ports": [{"port": 6379, "protocol": "TCP"}], "to": [{"podSelector": {"matchLabels": REDIS}}]}
    assert controller_policy("redis.bundled.port=6400")["egress"][2]["ports"] == [{"port": 6400, "protocol": "TCP"}]


def test_external_redis_egress_uses_the_url_port_and_peers() -> None:
    spec = render_scenario("redis-external").get("NetworkPolicy", "rel-certa")["spec"]
    assert spec["egress"][2] == {
        "ports": [{"port": 6379, "protocol": "TCP"}],
        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
    }
    # The URL's port, to any destination when no peer is given.
    spec = render_scenario("redis-external-tls").get("NetworkPolicy", "rel-certa")["spec"]
    assert spec["egress"][2] == {"ports": [{"port": 6380, "protocol": "TCP"}]}
    spec = controller_policy("redis.bundled.enabled=false", "redis.external.url=redis://redis.data.svc")
    assert spec["egress"][2] == {"ports": [{"port": 6379, "protocol": "TCP"}]}


def test_redis_cluster_egress_lists_every_node_port() -> None:
    spec = render_scenario("redis-cluster").get("NetworkPolicy", "rel-certa")["spec"]
    assert spec["egress"][2] == {"ports": [{"port": port, "protocol": "TCP"} for port in (7000, 7001, 7002)]}


def test_redis_over_a_unix_socket_needs_no_egress() -> None:
    spec = controller_policy("redis.bundled.enabled=false", "redis.external.url=unix:///run/redis/redis.sock")
    assert len(spec["egress"]) == 2


def test_bundled_redis_accepts_only_the_controller() -> None:
    rendered = render_scenario("redis-existing-secret")
    spec = rendered.get("NetworkPolicy", "rel-certa-redis")["spec"]
    assert spec["podSelector"] == {"matchLabels": REDIS}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [
        {"ports": [{"port": 6379, "protocol": "TCP"}], "from": [{"podSelector": {"matchLabels": CONTROLLER}}]}
    ]
    # Redis opens no connection: every egress is denied.
    assert spec["egress"] == []
    assert not render_scenario("redis-external").find("NetworkPolicy", "rel-certa-redis")
    assert not render().find("NetworkPolicy", "rel-certa-redis")


def test_controller_ingress_defaults_to_the_namespace_and_the_test_pod() -> None:
    (grpc,) = controller_policy()["ingress"]
    assert grpc["ports"] == [{"port": 50051, "protocol": "TCP"}]
    assert grpc["from"] == [{"podSelector": {}}, {"podSelector": {"matchLabels": TEST_POD}}]


def test_controller_ingress_from_selected_namespaces_and_pods() -> None:
    (grpc,) = render_scenario("network-policy").get("NetworkPolicy", "rel-certa")["spec"]["ingress"]
    assert grpc["from"] == [
        {"namespaceSelector": {"matchLabels": {"team": "apps"}}},
        {"podSelector": {"matchLabels": TEST_POD}},
    ]


def test_metrics_ingress_only_with_service_monitor() -> None:
    rendered = render_scenario("service-monitor")
    _, metrics = rendered.get("NetworkPolicy", "rel-certa")["spec"]["ingress"]
    assert metrics == {
        "ports": [{"port": 9464, "protocol": "TCP"}],
        "from": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
    }
    assert len(controller_policy("networkPolicy.ingress.metricsFrom[0].podSelector.matchLabels.a=b")["ingress"]) == 1


def test_external_triton_egress_uses_the_url_port_and_peers() -> None:
    spec = render_scenario("triton-off").get("NetworkPolicy", "rel-certa")["spec"]
    # No peers given: the Triton port to any destination.
    assert spec["egress"][1] == {"ports": [{"port": 443, "protocol": "TCP"}]}
    spec = controller_policy(
        "triton.enabled=false",
        "triton.externalUrl=triton://triton.inference.svc",
        "networkPolicy.egress.triton[0].namespaceSelector.matchLabels.name=inference",
    )
    assert spec["egress"][1] == {
        "ports": [{"port": 8001, "protocol": "TCP"}],
        "to": [{"namespaceSelector": {"matchLabels": {"name": "inference"}}}],
    }


def test_extra_egress_rules_are_appended() -> None:
    spec = controller_policy(
        "networkPolicy.egress.extra[0].to[0].ipBlock.cidr=10.1.0.0/16",
        "networkPolicy.egress.extra[0].ports[0].port=443",
    )
    assert len(spec["egress"]) == 4
    assert spec["egress"][3] == {"to": [{"ipBlock": {"cidr": "10.1.0.0/16"}}], "ports": [{"port": 443}]}


def test_triton_accepts_only_the_controller_and_scrapers() -> None:
    spec = render_scenario("service-monitor").get("NetworkPolicy", "rel-certa-triton")["spec"]
    assert spec["podSelector"] == {"matchLabels": TRITON}
    assert spec["policyTypes"] == ["Ingress"]
    grpc, metrics = spec["ingress"]
    assert grpc == {
        "ports": [{"port": 8001, "protocol": "TCP"}],
        "from": [{"podSelector": {"matchLabels": CONTROLLER}}],
    }
    assert metrics["ports"] == [{"port": 8002, "protocol": "TCP"}]
    assert not render_scenario("triton-off").find("NetworkPolicy", "rel-certa-triton")


def test_otlp_egress_only_with_an_endpoint() -> None:
    """The observability scenario sets otel.endpoint: the collector's port, to any destination without peers."""
    spec = render_scenario("observability").get("NetworkPolicy", "rel-certa")["spec"]
    assert len(spec["egress"]) == 4
    assert spec["egress"][3] == {"ports": [{"port": 4317, "protocol": "TCP"}]}
    # No endpoint, no OTLP rule (the peers alone open nothing).
    spec = controller_policy("networkPolicy.egress.otlp.to[0].ipBlock.cidr=10.0.0.0/8")
    assert len(spec["egress"]) == 3


def test_otlp_egress_peers_and_ports() -> None:
    spec = render_scenario("network-policy-namespaces").get("NetworkPolicy", "rel-certa")["spec"]
    assert spec["egress"][3] == {
        "ports": [{"port": 4317, "protocol": "TCP"}],
        "to": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
    }
    # An endpoint without a port: gRPC's default, 443.
    spec = controller_policy("otel.endpoint=https://otel.example.com")
    assert spec["egress"][3] == {"ports": [{"port": 443, "protocol": "TCP"}]}
    spec = controller_policy("otel.endpoint=http://otel:4317", "networkPolicy.egress.otlp.ports={4317,55680}")
    assert spec["egress"][3] == {"ports": [{"port": 4317, "protocol": "TCP"}, {"port": 55680, "protocol": "TCP"}]}
    # Extra rules still come last.
    spec = controller_policy("otel.endpoint=http://otel:4317", "networkPolicy.egress.extra[0].ports[0].port=443")
    assert spec["egress"][4] == {"ports": [{"port": 443}]}


def test_controller_ingress_from_named_namespaces_with_pod_labels() -> None:
    (grpc,) = render_scenario("network-policy-namespaces").get("NetworkPolicy", "rel-certa")["spec"]["ingress"]
    assert grpc["ports"] == [{"port": 50051, "protocol": "TCP"}]
    client = {"matchLabels": {"role": "certa-client"}}
    assert grpc["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}, "podSelector": client},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "batch"}}, "podSelector": client},
        {"podSelector": {"matchLabels": TEST_POD}},
    ]


def test_controller_ingress_namespaces_pod_labels_and_peers_combine() -> None:
    # Pod labels alone: those pods of the release namespace (no longer every pod of it).
    (grpc,) = controller_policy("networkPolicy.ingress.podLabels.role=client")["ingress"]
    assert grpc["from"] == [
        {"podSelector": {"matchLabels": {"role": "client"}}},
        {"podSelector": {"matchLabels": TEST_POD}},
    ]
    # Namespaces alone: every pod of them; `from` peers are added.
    (grpc,) = controller_policy(
        "networkPolicy.ingress.namespaces={apps}", "networkPolicy.ingress.from[0].ipBlock.cidr=10.9.0.0/16"
    )["ingress"]
    assert grpc["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}},
        {"ipBlock": {"cidr": "10.9.0.0/16"}},
        {"podSelector": {"matchLabels": TEST_POD}},
    ]


def test_with_tls_the_health_port_admits_only_the_test_pod() -> None:
    """Kubelet probes are not subject to NetworkPolicy; `helm test` calls the plaintext health port."""
    spec = render_scenario("tls-existing-secret").get("NetworkPolicy", "rel-certa")["spec"]
    grpc, health = spec["ingress"]
    assert grpc["ports"] == [{"port": 50051, "protocol": "TCP"}]
    assert grpc["from"] == [{"podSelector": {}}, {"podSelector": {"matchLabels": TEST_POD}}]
    assert health == {
        "ports": [{"port": 8086, "protocol": "TCP"}],
        "from": [{"podSelector": {"matchLabels": TEST_POD}}],
    }
    # Metrics still come after.
    spec = controller_policy(
        "tls.enabled=true",
        "tls.existingSecret=t",
        "metrics.enabled=true",
        "networkPolicy.ingress.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring",
    )
    assert [rule["ports"][0]["port"] for rule in spec["ingress"]] == [50051, 8086, 9464]
