"""Operating the release: load spreading (connection age, headless Service, Gateway routes, the HTTP port),
metrics turned on by what needs them, alerts, the dashboard, image digests, extra environment, the preStop pause and
the Redis password under GitOps."""

from __future__ import annotations

import json
import re
from pathlib import Path

import promql_parser
import pytest
import yaml

from certa.config import GrpcSettings
from tests.contract.chart.conftest import (
    CHART,
    DIGEST,
    MONITORING_API,
    ROOT,
    Rendered,
    helm,
    render,
    render_error,
    render_scenario,
)
from tests.contract.chart.test_controller import settings_of

pytestmark = pytest.mark.chart

DASHBOARD = CHART / "dashboards" / "certa-dashboard.json"
# The Prometheus names the controller exports (docs/operations.md; tests/unit/observability/test_telemetry.py scrapes
# them), and the request-duration histogram the request telemetry adds (labels rpc, strategy, status).
EXPORTED = {
    "certa_requests_total",
    "certa_requests_in_flight",
    "certa_pool_denied_total",
    "certa_store_operation_duration_seconds_sum",
    "certa_store_operation_duration_seconds_count",
    "certa_request_duration_seconds_bucket",
}
# The matchers selecting the release's controller pods (certa.podSelector), by the target labels every scrape
# configuration sets (a ServiceMonitor's `service` and `job` are not among them).
RELEASE_PODS = {"namespace": ("=", "ml"), "pod": ("=~", "rel-certa-[a-z0-9]{1,10}-[a-z0-9]{5}")}
MATCH_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


def selectors(query: str) -> list[tuple[str, dict[str, tuple[str, str]]]]:
    """The series selectors of a PromQL query, in order: (metric, {label: (op, value)}); invalid PromQL fails."""
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(query), visit)
    return [
        (vector.name, {m.name: (MATCH_OPS[str(m.op)], m.value) for m in vector.matchers.matchers}) for vector in found
    ]


# -- load spreading ---------------------------------------------------------------------------------------------


def test_connection_age_and_keepalive_reach_the_controller(tmp_path: Path) -> None:
    defaults = settings_of(render(), tmp_path)
    assert defaults.grpc == GrpcSettings()  # the chart's defaults are the controller's
    assert defaults.grpc.max_connection_age_s == 300 and defaults.grpc.max_connection_age_grace_s is None
    aged = settings_of(render_scenario("load-spreading"), tmp_path)
    assert (aged.grpc.max_connection_age_s, aged.grpc.max_connection_age_grace_s) == (120, 4000)


def test_no_headless_service_or_routes_by_default() -> None:
    rendered = render()
    names = sorted(service["metadata"]["name"] for service in rendered.of_kind("Service"))
    assert names == ["rel-certa", "rel-certa-redis", "rel-certa-triton"]
    assert not rendered.of_kind("GRPCRoute") and not rendered.of_kind("HTTPRoute")
    assert rendered.config["CERTA_HTTP_PORT"] == "0"
    assert [port["name"] for port in rendered.controller_container["ports"]] == ["grpc"]


def test_headless_service_resolves_to_the_controller_pods() -> None:
    rendered = render_scenario("load-spreading")
    service = rendered.get("Service", "rel-certa")
    headless = rendered.get("Service", "rel-certa-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == service["spec"]["selector"]
    assert headless["spec"]["selector"].items() <= rendered.controller["spec"]["template"]["metadata"]["labels"].items()
    assert [(p["name"], p["port"], p["appProtocol"]) for p in headless["spec"]["ports"]] == [
        ("grpc", 50051, "grpc"),
        ("http", 8080, "http"),
    ]


def test_the_headless_service_has_no_metrics_port_so_pods_are_scraped_once() -> None:
    rendered = render(
        "service.headless.enabled=true", "serviceMonitor.enabled=true", extra=("--api-versions", MONITORING_API)
    )
    (monitor,) = [m for m in rendered.of_kind("ServiceMonitor") if m["metadata"]["name"] == "rel-certa"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [
        service["metadata"]["name"]
        for service in rendered.of_kind("Service")
        if selector.items() <= service["metadata"]["labels"].items()
        and "metrics" in {port["name"] for port in service["spec"]["ports"]}
    ]
    assert scraped == ["rel-certa"]


def test_http_port_adds_container_and_service_ports_and_the_liveness_probe() -> None:
    rendered = render_scenario("load-spreading")
    container = rendered.controller_container
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert rendered.config["CERTA_HTTP_PORT"] == "8080"
    assert container["livenessProbe"]["httpGet"] == {"port": "http", "path": "/healthz", "scheme": "HTTP"}
    # Readiness keeps asking the gRPC health service, which checks the store and the default backend.
    assert container["readinessProbe"]["grpc"] == {"port": 50051, "service": "certa.v1.ReasoningService"}
    http = next(p for p in rendered.get("Service", "rel-certa")["spec"]["ports"] if p["name"] == "http")
    assert (http["port"], http["targetPort"]) == (8080, "http")
    # The NetworkPolicy admits the API's callers on both ports.
    policy = rendered.get("NetworkPolicy", "rel-certa")
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == [50051, 8080]


def test_http_endpoint_with_tls_is_probed_over_https() -> None:
    rendered = render_scenario("load-spreading-tls")
    assert rendered.controller_container["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    http = next(p for p in rendered.get("Service", "rel-certa")["spec"]["ports"] if p["name"] == "http")
    assert http["appProtocol"] == "https"
    headless = rendered.get("Service", "rel-certa-headless")
    assert [p["name"] for p in headless["spec"]["ports"]] == ["grpc", "health", "http"]


def test_grpc_route_shape() -> None:
    rendered = render_scenario("load-spreading")
    route = rendered.get("GRPCRoute", "rel-certa")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["metadata"]["namespace"] == "ml"
    spec = route["spec"]
    assert spec["parentRefs"] == [{"name": "public", "namespace": "gateways"}]
    assert spec["hostnames"] == ["certa.example.com"]
    (rule,) = spec["rules"]
    assert rule == {"backendRefs": [{"name": "rel-certa", "port": 50051}]}
    # The backend is the Service's gRPC port.
    service = rendered.get("Service", "rel-certa")
    assert {"grpc": 50051}.items() <= {p["name"]: p["port"] for p in service["spec"]["ports"]}.items()


def test_http_route_shape() -> None:
    rendered = render_scenario("load-spreading")
    route = rendered.get("HTTPRoute", "rel-certa")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    spec = route["spec"]
    assert spec["parentRefs"] == [{"name": "public", "namespace": "gateways", "sectionName": "https"}]
    assert "hostnames" not in spec
    (rule,) = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v1"}}]
    assert rule["backendRefs"] == [{"name": "rel-certa", "port": 8080}]
    http = next(p for p in rendered.get("Service", "rel-certa")["spec"]["ports"] if p["name"] == "http")
    assert http["port"] == 8080


def test_notes_say_how_clients_balance() -> None:
    result = helm(
        "install", "certa", str(CHART), "--namespace", "ml", "--dry-run=client",
        "--set", "auth.apiKeys.existingSecret=k", "--set", "service.headless.enabled=true",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    notes = result.stdout.split("NOTES:", 1)[1]
    assert "dns:///certa-headless.ml.svc:50051" in notes and "round_robin" in notes
    assert "after about\n300 s (controller.config.grpcMaxConnectionAgeSeconds)" in notes


# -- metrics turned on by what needs them ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "sets",
    [
        ("autoscaling.enabled=true",),
        ("keda.enabled=true",),
        ("prometheusRule.enabled=true",),
        ("metrics.enabled=true",),
    ],
)
def test_metrics_are_served_when_something_needs_them(sets: tuple[str, ...]) -> None:
    rendered = render(*sets, extra=("--api-versions", MONITORING_API))
    assert rendered.config["CERTA_METRICS_PORT"] == "9464"
    assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in rendered.controller_container["ports"]
    assert "metrics" in {p["name"] for p in rendered.get("Service", "rel-certa")["spec"]["ports"]}


@pytest.mark.parametrize(
    "sets",
    [
        (),
        # An HPA on CPU only, KEDA without its Prometheus trigger: nothing reads the metrics.
        ("autoscaling.enabled=true", "autoscaling.requestsInFlight.enabled=false"),
        ("keda.enabled=true", "keda.prometheus.enabled=false"),
    ],
)
def test_metrics_stay_off_when_nothing_needs_them(sets: tuple[str, ...]) -> None:
    rendered = render(*sets)
    assert rendered.config["CERTA_METRICS_PORT"] == "0"
    assert "metrics" not in {p["name"] for p in rendered.controller_container["ports"]}


def test_keda_query_works_without_a_service_monitor() -> None:
    rendered = render_scenario("keda-without-service-monitor")
    assert not rendered.of_kind("ServiceMonitor")
    (scaled,) = rendered.of_kind("ScaledObject")
    (trigger,) = scaled["spec"]["triggers"]
    ((metric, matchers),) = selectors(trigger["metadata"]["query"])
    assert metric == "certa_requests_in_flight" and matchers == RELEASE_PODS
    pod = matchers["pod"][1]
    # The regex (anchored, as Prometheus anchors it) matches the Deployment's pods and no other pod of the release.
    assert re.fullmatch(pod, "rel-certa-6d4b9c7f8-x2x9q")
    for other in ("rel-certa-triton-5f7c9d-abcde", "rel-certa-redis-0", "other-certa-6d4b9c7f8-x2x9q"):
        assert not re.fullmatch(pod, other), other


# -- alerts -----------------------------------------------------------------------------------------------------


def prometheus_rule() -> dict:
    (rule,) = render_scenario("prometheus-rule").of_kind("PrometheusRule")
    return rule


def test_prometheus_rule_shape() -> None:
    rule = prometheus_rule()
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (group,) = rule["spec"]["groups"]
    assert group["name"] == "rel-certa"
    alerts = {entry["alert"]: entry for entry in group["rules"]}
    assert set(alerts) == {
        "CertaHighErrorRate",
        "CertaHighLatency",
        "CertaRedisUnavailable",
        "CertaBudgetPoolExhausted",
        "CertaLeaseTakeovers",
    }
    for name, alert in alerts.items():
        assert set(alert) <= {"alert", "expr", "for", "labels", "annotations"}, name
        assert alert["labels"]["severity"] in {"info", "warning", "critical"}, name
        assert alert["annotations"]["summary"] and alert["annotations"]["description"], name
        if "for" in alert:
            assert re.fullmatch(r"\d+[smh]", alert["for"]), name
        assert isinstance(promql_parser.parse(alert["expr"]), promql_parser.BinaryExpr), name  # a comparison


def test_alerts_use_exported_metrics_of_the_release_pods() -> None:
    for alert in prometheus_rule()["spec"]["groups"][0]["rules"]:
        read = selectors(alert["expr"])
        metrics = {metric for metric, _ in read}
        assert metrics and metrics <= EXPORTED, (alert["alert"], metrics - EXPORTED)
        for metric, matchers in read:
            assert matchers.items() >= RELEASE_PODS.items(), (alert["alert"], metric)


def test_alert_thresholds_follow_the_values() -> None:
    rendered = render(
        "prometheusRule.enabled=true",
        "prometheusRule.errorRate.threshold=0.2",
        "prometheusRule.latencyP99.thresholdSeconds=90",
        "prometheusRule.leaseTakeovers.enabled=false",
        "prometheusRule.alertLabels.team=ml",
        "controller.config.redisTimeoutSeconds=4",
        extra=("--api-versions", MONITORING_API),
    )
    (rule,) = rendered.of_kind("PrometheusRule")
    alerts = {entry["alert"]: entry for entry in rule["spec"]["groups"][0]["rules"]}
    assert "CertaLeaseTakeovers" not in alerts
    assert alerts["CertaHighErrorRate"]["expr"].rstrip().endswith("> 0.2")
    assert alerts["CertaHighLatency"]["expr"].rstrip().endswith("> 90")
    assert alerts["CertaRedisUnavailable"]["expr"].rstrip().endswith(">= 2")  # half the Redis timeout
    assert all(alert["labels"]["team"] == "ml" for alert in alerts.values())


def test_each_alert_reads_its_metric() -> None:
    alerts = {entry["alert"]: entry["expr"] for entry in prometheus_rule()["spec"]["groups"][0]["rules"]}

    def extra_matchers(alert: str) -> list[tuple[str, dict[str, tuple[str, str]]]]:
        """The alert's selectors with the release's pod matchers left out."""
        return [
            (metric, {label: m for label, m in matchers.items() if label not in RELEASE_PODS})
            for metric, matchers in selectors(alerts[alert])
        ]

    # Failed requests over all requests.
    assert extra_matchers("CertaHighErrorRate") == [
        ("certa_requests_total", {"stop_reason": ("=~", "error|deadline")}),
        ("certa_requests_total", {}),
    ]
    assert (
        "histogram_quantile(0.99, sum by (le, rpc) (rate(certa_request_duration_seconds_bucket{"
        in (alerts["CertaHighLatency"])
    )
    # The mean duration of the readiness pings.
    assert extra_matchers("CertaRedisUnavailable") == [
        ("certa_store_operation_duration_seconds_sum", {"operation": ("=", "ping")}),
        ("certa_store_operation_duration_seconds_count", {"operation": ("=", "ping")}),
    ]
    assert extra_matchers("CertaBudgetPoolExhausted") == [("certa_pool_denied_total", {})]
    assert extra_matchers("CertaLeaseTakeovers") == [
        ("certa_store_operation_duration_seconds_count", {"operation": ("=", "claim")})
    ]


# -- the dashboard ----------------------------------------------------------------------------------------------


def test_dashboard_configmap_for_the_grafana_sidecar() -> None:
    rendered = render_scenario("grafana-dashboard")
    configmap = rendered.get("ConfigMap", "rel-certa-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Certa"}
    assert configmap["metadata"]["namespace"] == "ml"
    (name,) = configmap["data"]
    assert json.loads(configmap["data"][name]) == json.loads(DASHBOARD.read_text())
    assert render().find("ConfigMap", "rel-certa-dashboard") is None


def test_dashboard_label_and_namespace_are_configurable() -> None:
    configmap = render(
        "grafana.dashboard.enabled=true",
        "grafana.dashboard.labels.grafana_dashboard=null",
        "grafana.dashboard.labels.dashboards=certa",
        "grafana.dashboard.namespace=monitoring",
    ).get("ConfigMap", "rel-certa-dashboard")
    assert configmap["metadata"]["labels"]["dashboards"] == "certa"
    assert "grafana_dashboard" not in configmap["metadata"]["labels"]
    assert configmap["metadata"]["namespace"] == "monitoring"


def test_one_copy_of_the_dashboard() -> None:
    copies = [path for path in ROOT.rglob("*dashboard*.json") if ".venv" not in path.parts and ".git" not in path.parts]
    assert copies == [DASHBOARD]


# -- images, environment, shutdown ------------------------------------------------------------------------------


def test_digests_override_the_tags() -> None:
    rendered = render_scenario("digests-and-extra-env")
    assert rendered.controller_container["image"] == f"certa/controller@{DIGEST}"
    assert rendered.triton["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"nvcr.io/nvidia/tritonserver@{DIGEST}"
    )
    assert rendered.redis["spec"]["template"]["spec"]["containers"][0]["image"] == f"docker.io/library/redis@{DIGEST}"
    (test_pod,) = rendered.of_kind("Pod")
    assert test_pod["spec"]["containers"][0]["image"] == f"certa/controller@{DIGEST}"
    # Without a digest, the tags.
    assert (
        render().redis["spec"]["template"]["spec"]["containers"][0]["image"] == "docker.io/library/redis:8.6.4-trixie"
    )


def test_extra_env_and_env_from_come_after_the_charts_own() -> None:
    container = render_scenario("digests-and-extra-env").controller_container
    assert container["env"][-1] == {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}
    assert container["env"][0]["name"] == "CERTA_REPLICA_ID"
    assert container["envFrom"][0] == {"configMapRef": {"name": "rel-certa"}}
    assert container["envFrom"][-1] == {"secretRef": {"name": "certa-extra"}}


def test_pre_stop_pause() -> None:
    container = render().controller_container
    assert container["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "10"]}}}
    assert "lifecycle" not in render_scenario("digests-and-extra-env").controller_container
    # `sleep` is in the image: its base is a Debian (coreutils) Python image.
    dockerfile = (ROOT / "services" / "controller" / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim-(bookworm|trixie)$", dockerfile, flags=re.MULTILINE)


def test_grace_covers_pre_stop_drain_and_stop() -> None:
    message = render_error("controller.preStopSleepSeconds=20")
    assert "controller.terminationGracePeriodSeconds (80) must exceed controller.preStopSleepSeconds (20)" in message
    assert "controller.config.drainTimeoutSeconds (60)" in message
    assert render("controller.preStopSleepSeconds=20", "controller.terminationGracePeriodSeconds=86").controller


# -- the Redis password under GitOps ----------------------------------------------------------------------------


def notes(*sets: str) -> str:
    args = [arg for assignment in ("auth.apiKeys.existingSecret=k", *sets) for arg in ("--set", assignment)]
    result = helm("install", "certa", str(CHART), "--namespace", "ml", "--dry-run=client", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.split("NOTES:", 1)[1]


def test_notes_send_gitops_to_an_existing_redis_secret() -> None:
    generated = notes()
    assert "the Redis password was generated (Secret certa-redis)" in generated
    assert "With GitOps, create the Secret yourself and set\nredis.bundled.auth.existingSecret" in generated
    assert "password was generated" not in notes("redis.bundled.auth.existingSecret=certa-redis")


def test_generated_password_changes_at_each_template_and_an_existing_secret_does_not() -> None:
    """Why GitOps needs existingSecret: two `helm template` runs give two passwords (no cluster to read back)."""

    def password_secret(*sets: str) -> dict | None:
        result = helm("template", "rel", str(CHART), "-n", "ml", "--set", "auth.apiKeys.existingSecret=k",
                      *[arg for assignment in sets for arg in ("--set", assignment)])  # fmt: skip
        assert result.returncode == 0, result.stderr
        return Rendered(tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)).find(
            "Secret", "rel-certa-redis"
        )

    first, second = password_secret(), password_secret()
    assert first is not None and second is not None and first["data"] != second["data"]
    assert password_secret("redis.bundled.auth.existingSecret=certa-redis") is None


def test_http_port_and_models_reach_the_controller(tmp_path: Path) -> None:
    rendered = render(
        "controller.httpPort=8080",
        extra=("--set-json", 'controller.config.httpModels={"qwen-early-exit": {"backend": "trtllm", "model": "m"}}'),
    )
    settings = settings_of(rendered, tmp_path)
    assert settings.http_listen_address == "0.0.0.0:8080"
    ((name, backend, model),) = [(m.name, m.backend, m.model) for m in settings.http_models]
    assert (name, backend, model) == ("qwen-early-exit", "trtllm", "m")
    defaults = settings_of(render(), tmp_path)
    assert (defaults.http_listen_address, defaults.http_models) == ("", ())
