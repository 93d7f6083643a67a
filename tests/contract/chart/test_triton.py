"""The in-chart Triton: TensorRT-LLM image, GPUs, shared memory, model repository, ports and probes."""

from __future__ import annotations

import pytest

from tests.contract.chart.conftest import Rendered, render, render_error, render_scenario

pytestmark = pytest.mark.chart


def pod_spec(rendered: Rendered) -> dict:
    return rendered.triton["spec"]["template"]["spec"]


def test_tensorrt_llm_server_by_default() -> None:
    rendered = render()
    spec = pod_spec(rendered)
    (container,) = spec["containers"]
    assert container["image"] == "nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3"
    assert container["command"] == ["tritonserver"]
    assert container["args"][:4] == [
        "--model-repository=/models",
        "--grpc-port=8001",
        "--http-port=8000",
        "--metrics-port=8002",
    ]
    assert "--allow-metrics=true" in container["args"]
    # tritonserver stops waiting for in-flight requests before the kubelet's SIGKILL.
    assert "--exit-timeout-secs=50" in container["args"]
    assert pod_spec(rendered)["terminationGracePeriodSeconds"] == 60
    assert {port["name"]: port["containerPort"] for port in container["ports"]} == {
        "grpc": 8001,
        "http": 8000,
        "metrics": 8002,
    }
    service = rendered.get("Service", "rel-certa-triton")
    assert {(p["name"], p["port"], p.get("appProtocol")) for p in service["spec"]["ports"]} == {
        ("grpc", 8001, "grpc"),
        ("http", 8000, "http"),
        ("metrics", 8002, "http"),
    }


def test_gpu_resources() -> None:
    (container,) = pod_spec(render())["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    (container,) = pod_spec(render("triton.gpu.count=4"))["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 4
    assert container["resources"]["limits"]["memory"] == "48Gi"


def test_shared_memory_and_tmp() -> None:
    spec = pod_spec(render())
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes["dshm"] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "4Gi"}}
    assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "1Gi"}
    mounts = {mount["name"]: mount["mountPath"] for mount in spec["containers"][0]["volumeMounts"]}
    assert mounts["dshm"] == "/dev/shm" and mounts["tmp"] == "/tmp"


@pytest.mark.parametrize(
    ("scenario", "source"),
    [
        ("defaults", {"persistentVolumeClaim": {"claimName": "certa-model-repository", "readOnly": True}}),
        ("triton-hostpath", {"hostPath": {"path": "/data/models", "type": "Directory"}}),
        ("triton-volume", {"nfs": {"server": "nfs.example", "path": "/models"}}),
    ],
)
def test_model_repository_sources(scenario: str, source: dict) -> None:
    spec = pod_spec(render_scenario(scenario))
    volume = next(volume for volume in spec["volumes"] if volume["name"] == "model-repository")
    assert volume == {"name": "model-repository", **source}
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "model-repository")
    assert mount == {"name": "model-repository", "mountPath": "/models", "readOnly": True}


def test_probes_on_triton_health_endpoints() -> None:
    (container,) = pod_spec(render())["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    startup = container["startupProbe"]
    assert startup["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    # Engines take minutes to load: the startup probe allows 15 minutes.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 900


def test_security_context() -> None:
    spec = pod_spec(render())
    assert spec["securityContext"]["runAsNonRoot"] is True
    context = spec["containers"][0]["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_dev_values_run_the_cpu_stand_in() -> None:
    rendered = render_scenario("dev")
    spec = pod_spec(rendered)
    (container,) = spec["containers"]
    assert container["image"] == "certa/triton-local:dev"
    assert container["command"] == ["certa-triton-local"]
    args = container["args"]
    assert args[:3] == ["serve", "--model", "qwen2.5-coder-0.5b"]
    assert args[args.index("--host") + 1] == "0.0.0.0"
    # Ports come from the chart's values (tpl), so the Service and the server agree.
    assert [args[args.index(flag) + 1] for flag in ("--grpc-port", "--http-port", "--metrics-port")] == [
        "8001",
        "8000",
        "8002",
    ]
    assert not any("nvidia.com/gpu" in key for key in container["resources"].get("limits", {}))
    assert not any("nvidia.com/gpu" in key for key in container["resources"].get("requests", {}))
    assert "model-repository" not in {volume["name"] for volume in spec["volumes"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "tolerations" not in spec
    assert rendered.config["CERTA_BACKENDS"] == "trtllm=triton://rel-certa-triton:8001"


def test_gpu_values() -> None:
    rendered = render_scenario("gpu")
    spec = pod_spec(rendered)
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {obj["kind"] for obj in rendered.objects} >= {"HorizontalPodAutoscaler", "NetworkPolicy", "ServiceMonitor"}


def test_triton_off_requires_external_url() -> None:
    message = render_error("triton.enabled=false")
    assert "/triton/externalUrl" in message
    message = render_error("triton.enabled=false", extra=("--skip-schema-validation",))
    assert "triton.externalUrl is required when triton.enabled is false" in message


def test_model_repository_source_required() -> None:
    assert "/triton/modelRepository/hostPath" in render_error("triton.modelRepository.type=hostPath")
    message = render_error("triton.modelRepository.type=hostPath", extra=("--skip-schema-validation",))
    assert "triton.modelRepository.hostPath is required" in message
