"""HPA or KEDA for the controller (never both), and the Triton HPA on its queueing time."""

from __future__ import annotations

import pytest

from tests.contract.chart.conftest import CHART, render, render_error, render_scenario

pytestmark = pytest.mark.chart


def test_no_autoscaler_by_default() -> None:
    rendered = render()
    assert not rendered.of_kind("HorizontalPodAutoscaler") and not rendered.of_kind("ScaledObject")
    assert rendered.controller["spec"]["replicas"] == 2


def test_controller_hpa_scales_on_cpu_and_requests_in_flight() -> None:
    rendered = render_scenario("autoscaling")
    hpa = rendered.get("HorizontalPodAutoscaler", "rel-certa")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "rel-certa"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    cpu, in_flight = hpa["spec"]["metrics"]
    assert cpu == {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
    }
    assert in_flight == {
        "type": "Pods",
        "pods": {
            "metric": {"name": "certa_requests_in_flight"},
            "target": {"type": "AverageValue", "averageValue": "32"},
        },
    }
    assert "replicas" not in rendered.controller["spec"]


def test_controller_hpa_metrics_are_optional() -> None:
    hpa = render("autoscaling.enabled=true", "autoscaling.targetCPUUtilizationPercentage=0").get(
        "HorizontalPodAutoscaler", "rel-certa"
    )
    assert [metric["type"] for metric in hpa["spec"]["metrics"]] == ["Pods"]
    hpa = render(
        "autoscaling.enabled=true",
        "autoscaling.requestsInFlight.enabled=false",
        "autoscaling.behavior.scaleDown.stabilizationWindowSeconds=600",
    ).get("HorizontalPodAutoscaler", "rel-certa")
    assert [metric["type"] for metric in hpa["spec"]["metrics"]] == ["Resource"]
    assert hpa["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 600}}


def test_hpa_and_keda_are_mutually_exclusive() -> None:
    # The schema names the offending value ...
    message = render_error("autoscaling.enabled=true", "keda.enabled=true")
    assert "/keda/enabled" in message and "value must be false" in message
    # ... and the template refuses it too when schema validation is skipped.
    message = render_error("autoscaling.enabled=true", "keda.enabled=true", extra=("--skip-schema-validation",))
    assert "autoscaling.enabled and keda.enabled are mutually exclusive" in message


def test_triton_hpa_scales_on_queue_time() -> None:
    hpa = render_scenario("autoscaling").get("HorizontalPodAutoscaler", "rel-certa-triton")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "rel-certa-triton"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "nv_inference_queue_duration_us"},
                "target": {"type": "AverageValue", "averageValue": "50000"},
            },
        }
    ]
    assert "replicas" not in render_scenario("autoscaling").triton["spec"]


def test_no_triton_hpa_without_triton() -> None:
    rendered = render("triton.enabled=false", "triton.externalUrl=triton://t:8001", "triton.autoscaling.enabled=true")
    assert not rendered.of_kind("HorizontalPodAutoscaler")


def test_metrics_adapter_requirement_is_documented() -> None:
    assert "Needs a metrics adapter" in (CHART / "values.yaml").read_text()
    readme = (CHART / "README.md").read_text()
    assert "## Autoscaling needs a metrics adapter" in readme
    assert "nv_inference_queue_duration_us" in readme and "certa_requests_in_flight" in readme
