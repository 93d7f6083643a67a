"""The controller's Deployment, ConfigMap, Service, PDB and test pod as rendered."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from certa.config import PREFIX, AuthSettings, GrpcSettings, Settings, StoreSettings, TlsSettings, load_settings
from certa.server import SERVICE_NAME
from tests.contract.chart.conftest import Rendered, render, render_scenario

pytestmark = pytest.mark.chart

# The variables certa.config.load_settings reads: one per Settings field; CERTA_AUTH_<FIELD>, CERTA_TLS_<FIELD> and
# CERTA_GRPC_<FIELD> for the fields of Settings.auth, Settings.tls and Settings.grpc; then those of the state store
# (Settings.store, a StoreSettings, whose fields do not follow the variable names).
NESTED = {"store": None, "auth": AuthSettings, "tls": TlsSettings, "grpc": GrpcSettings}
# Settings fields read from a variable of another name.
RENAMED = {"http_listen_address": "CERTA_HTTP_PORT"}  # the host is the gRPC listen address's
SETTINGS_VARIABLES = {
    RENAMED.get(field.name, PREFIX + field.name.upper())
    for field in dataclasses.fields(Settings)
    if field.name not in NESTED
}
SECURITY_VARIABLES = {
    f"{PREFIX}{name.upper()}_{field.name.upper()}"
    for name, settings in NESTED.items()
    if settings is not None
    for field in dataclasses.fields(settings)
}
STORE_VARIABLES = {
    "CERTA_STORE",
    "CERTA_REDIS_URL",
    "CERTA_REDIS_USERNAME",
    "CERTA_REDIS_PASSWORD",
    "CERTA_REDIS_PASSWORD_FILE",
    "CERTA_REDIS_TLS_CA_FILE",
    "CERTA_REDIS_TLS_CERT_FILE",
    "CERTA_REDIS_TLS_KEY_FILE",
    "CERTA_REDIS_CLUSTER",
    "CERTA_REDIS_TIMEOUT_S",
    "CERTA_REDIS_POOL_SIZE",
    "CERTA_REDIS_KEY_PREFIX",
    "CERTA_STATE_TTL_S",
    "CERTA_RESULT_TTL_S",
    "CERTA_LEASE_S",
    "CERTA_SWEEP_INTERVAL_S",
    "CERTA_REPLICA_ID",
}
CONTROLLER_VARIABLES = SETTINGS_VARIABLES | SECURITY_VARIABLES | STORE_VARIABLES
# The password reaches the controller as a mounted file (CERTA_REDIS_PASSWORD_FILE), never as a variable.
NOT_SET_BY_THE_CHART = {"CERTA_REDIS_PASSWORD"}
SERVER_STOP_GRACE_S = 5  # CertaServer.stop(): server.stop(grace=5.0) after the drain


def certa_variables(rendered: Rendered) -> set[str]:
    """CERTA_* variables of the controller container: the ConfigMap's and the container's own `env`."""
    env = {item["name"] for item in rendered.controller_container["env"]}
    return set(rendered.config) | {name for name in env if name.startswith(PREFIX)}


def controller_env(rendered: Rendered, root: Path) -> dict[str, str]:
    """The container's CERTA_* environment (ConfigMap, then `env` values) with every file it names created under
    `root` (an empty JSON object will do for load_settings, which checks only that they exist)."""
    env = dict(rendered.config)
    for item in rendered.controller_container["env"]:
        if "value" in item and item["name"].startswith(PREFIX):
            value = item["value"]
            if value.startswith("/etc/certa/"):
                path = root / value.removeprefix("/")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("{}\n")
                value = str(path)
            env[item["name"]] = value
    return env


def settings_of(rendered: Rendered, root: Path) -> Settings:
    return load_settings(controller_env(rendered, root))


def test_the_chart_sets_exactly_the_variables_the_controller_reads() -> None:
    # The default rendering and renderings with every optional variable (Redis username and TLS files; server TLS
    # with mutual TLS; JWT).
    chart = set().union(
        *(
            certa_variables(rendered)
            for rendered in (
                render(),
                render_scenario("redis-external-tls"),
                render_scenario("tls-cert-manager-mtls"),
                render_scenario("auth-jwt-secret"),
            )
        )
    )
    assert chart == CONTROLLER_VARIABLES - NOT_SET_BY_THE_CHART


# A value for each store variable that differs from the controller's default.
STORE_VALUES = {
    "CERTA_STORE": "memory",
    "CERTA_REDIS_URL": "redis://elsewhere:6380/1",
    "CERTA_REDIS_USERNAME": "certa",
    "CERTA_REDIS_PASSWORD": "secret",
    "CERTA_REDIS_CLUSTER": "true",
    "CERTA_REDIS_TIMEOUT_S": "7",
    "CERTA_REDIS_POOL_SIZE": "7",
    "CERTA_REDIS_KEY_PREFIX": "other",
    "CERTA_STATE_TTL_S": "7200",
    "CERTA_RESULT_TTL_S": "90000",
    "CERTA_LEASE_S": "7",
    "CERTA_SWEEP_INTERVAL_S": "7",
    "CERTA_REPLICA_ID": "pod-1",
}


@pytest.mark.parametrize("variable", sorted(STORE_VARIABLES))
def test_the_controller_reads_every_store_variable(variable: str, tmp_path: Path) -> None:
    """STORE_VARIABLES is the controller's contract: setting any one of them changes its StoreSettings."""
    base = {"CERTA_REDIS_URL": "redis://127.0.0.1:6379/0", "CERTA_AUTH_DISABLED": "true"}
    if variable.endswith("_FILE"):
        (tmp_path / "file").write_text("contents\n")
        value = str(tmp_path / "file")
    else:
        value = STORE_VALUES[variable]
    assert load_settings({**base, variable: value}).store != load_settings(base).store


def test_configmap_defaults_equal_the_controller_defaults(tmp_path: Path) -> None:
    config = render().config
    # The ConfigMap leaves authentication to the API keys file the container's `env` names (a mounted Secret).
    keys = tmp_path / "keys.json"
    keys.write_text('{"keys": []}\n')
    settings = load_settings({**config, "CERTA_AUTH_API_KEYS_FILE": str(keys)})
    # The Redis address is the release's; the replica id comes from the pod name (CERTA_REPLICA_ID in `env`).
    store = dataclasses.replace(
        StoreSettings(), redis_url="redis://rel-certa-redis:6379/0", replica_id=settings.store.replica_id
    )
    auth = dataclasses.replace(AuthSettings(), api_keys_file=str(keys))
    expected = dataclasses.replace(Settings(), backends=settings.backends, store=store, auth=auth)
    assert settings == expected
    assert config["CERTA_INSTRUCTION"] == Settings().instruction
    assert config["CERTA_HEALTH_LISTEN_ADDRESS"] == ""


def test_every_controller_value_maps_to_its_variable(tmp_path: Path) -> None:
    rendered = render(
        "controller.port=6000",
        "controller.config.backendName=big",
        "controller.config.backendOptions.mode=tokens",
        "controller.config.extraBackends[0].name=oa",
        "controller.config.extraBackends[0].url=openai+http://vllm.ml.svc:8000/v1",
        "controller.config.defaultBackend=oa",
        "controller.config.defaultTokenBudget=1000",
        "controller.config.maxTokenBudget=1000000",
        "controller.config.defaultDeadlineSeconds=1.5",
        "controller.config.maxDeadlineSeconds=7200",
        "controller.config.maxPromptChars=999",
        "controller.config.maxSamples=9",
        "controller.config.promptTemplate=chatml",
        "controller.config.instruction=Think.",
        "controller.config.backendConnectTimeoutSeconds=3",
        "controller.config.drainTimeoutSeconds=30",
        "controller.config.maxConcurrentRequests=17",
        "controller.config.logLevel=debug",
        "controller.config.logFormat=text",
        "controller.config.redisTimeoutSeconds=0.5",
        "controller.config.redisPoolSize=16",
        "controller.config.redisKeyPrefix=certa-blue",
        "controller.config.stateTtlSeconds=600",
        "controller.config.resultTtlSeconds=7200",
        "controller.config.leaseSeconds=6",
        "controller.config.sweepIntervalSeconds=2.5",
        "controller.config.grpcMaxConnectionAgeSeconds=90",
        "controller.config.grpcMaxConnectionAgeGraceSeconds=7300",
        "controller.config.grpcKeepaliveTimeSeconds=30",
        "controller.config.grpcKeepaliveTimeoutSeconds=5",
        "controller.config.grpcKeepalivePermitWithoutCalls=false",
        "controller.config.grpcMinPingIntervalSeconds=2.5",
        "redis.bundled.enabled=false",
        "redis.external.url=redis://redis-cluster.data.svc:7000/0",
        "redis.external.username=certa",
        "redis.external.cluster=true",
    )
    settings = settings_of(rendered, tmp_path)
    assert settings.listen_address == "0.0.0.0:6000"
    assert [(spec.name, spec.url) for spec in settings.backends] == [
        ("big", "triton://rel-certa-triton:8001?mode=tokens"),
        ("oa", "openai+http://vllm.ml.svc:8000/v1"),
    ]
    assert settings.default_backend == "oa"
    assert (settings.default_token_budget, settings.max_token_budget) == (1000, 1_000_000)
    assert (settings.default_deadline_s, settings.max_deadline_s) == (1.5, 7200.0)
    assert (settings.max_prompt_chars, settings.max_samples) == (999, 9)
    assert (settings.prompt_template, settings.instruction) == ("chatml", "Think.")
    assert (settings.backend_connect_timeout_s, settings.drain_timeout_s) == (3.0, 30.0)
    assert settings.max_concurrent_requests == 17
    assert (settings.log_level, settings.log_format) == ("DEBUG", "text")
    store = settings.store
    assert (store.kind, store.redis_url, store.redis_username) == (
        "redis",
        "redis://redis-cluster.data.svc:7000/0",
        "certa",
    )
    assert store.redis_cluster is True
    assert (store.redis_timeout_s, store.redis_pool_size, store.key_prefix) == (0.5, 16, "certa-blue")
    assert (store.state_ttl_s, store.result_ttl_s) == (600, 7200)
    assert (store.lease_s, store.sweep_interval_s) == (6, 2.5)
    assert settings.grpc == GrpcSettings(
        max_connection_age_s=90,
        max_connection_age_grace_s=7300,
        keepalive_time_s=30,
        keepalive_timeout_s=5,
        keepalive_permit_without_calls=False,
        min_ping_interval_s=2.5,
    )


def test_backends_follow_the_active_triton() -> None:
    assert render().config["CERTA_BACKENDS"] == "trtllm=triton://rel-certa-triton:8001"
    assert render("triton.ports.grpc=9001").config["CERTA_BACKENDS"] == "trtllm=triton://rel-certa-triton:9001"
    external = render(
        "triton.enabled=false",
        "triton.externalUrl=triton+tls://t.example:443?ca_file=/ca/ca.pem",
        "controller.config.backendOptions.mode=text",
    )
    assert external.config["CERTA_BACKENDS"] == "trtllm=triton+tls://t.example:443?ca_file=/ca/ca.pem&mode=text"
    assert external.triton is None
    assert not [obj for obj in external.objects if obj["metadata"]["name"].endswith("-triton")]


def test_container_runs_certa_serve_with_config_and_secret_as_env() -> None:
    container = render_scenario("existing-secret").controller_container
    assert container["command"] == ["certa"] and container["args"] == ["serve"]
    # Besides the envFrom sources, `env` holds only what a ConfigMap cannot: the pod name and mounted file paths.
    assert [item["name"] for item in container["env"]] == [
        "CERTA_REPLICA_ID",
        "CERTA_REDIS_PASSWORD_FILE",
        "CERTA_AUTH_API_KEYS_FILE",
        "CERTA_TENANTS_FILE",
    ]
    # The Secret comes after the ConfigMap, so its CERTA_* keys override the ConfigMap's.
    assert container["envFrom"] == [
        {"configMapRef": {"name": "rel-certa"}},
        {"secretRef": {"name": "certa-backends"}},
    ]
    assert render().controller_container["envFrom"] == [{"configMapRef": {"name": "rel-certa"}}]


def test_metrics_are_served_when_enabled_or_scraped_by_a_service_monitor(tmp_path: Path) -> None:
    default = render()
    assert default.config["CERTA_METRICS_PORT"] == "0"
    assert [port["name"] for port in default.controller_container["ports"]] == ["grpc"]
    assert [port["name"] for port in default.get("Service", "rel-certa")["spec"]["ports"]] == ["grpc"]
    for sets in (("metrics.enabled=true", "metrics.port=9100"), ("serviceMonitor.enabled=true", "metrics.port=9100")):
        rendered = render(*sets)
        assert settings_of(rendered, tmp_path / sets[0]).metrics_port == 9100
        assert {"name": "metrics", "containerPort": 9100, "protocol": "TCP"} in rendered.controller_container["ports"]
        service_ports = rendered.get("Service", "rel-certa")["spec"]["ports"]
        assert {
            "name": "metrics",
            "port": 9100,
            "targetPort": "metrics",
            "protocol": "TCP",
            "appProtocol": "http",
        } in service_ports


def test_otel_variables_are_set_only_with_an_endpoint() -> None:
    env = render("otel.serviceName=other", "otel.tracesSamplerArg=0.5").controller_container["env"]
    assert not [item for item in env if item["name"] == "POD_NAME" or item["name"].startswith("OTEL_")]
    env = render_scenario("observability").controller_container["env"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in env
    assert {item["name"]: item["value"] for item in env if item["name"].startswith("OTEL_")} == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.monitoring.svc:4317",
        "OTEL_SERVICE_NAME": "certa",
        "OTEL_RESOURCE_ATTRIBUTES": "k8s.namespace.name=ml,k8s.pod.name=$(POD_NAME),team=ml",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_METRICS_EXPORTER": "otlp",
    }
    env = render("otel.endpoint=http://c:4317", "otel.exportMetrics=false").controller_container["env"]
    assert {"name": "OTEL_METRICS_EXPORTER", "value": "none"} in env
    assert "OTEL_TRACES_SAMPLER_ARG" not in {item["name"] for item in env}


def test_native_grpc_probes() -> None:
    container = render("controller.port=6000").controller_container
    assert container["ports"] == [{"name": "grpc", "containerPort": 6000, "protocol": "TCP"}]
    assert container["startupProbe"]["grpc"] == {"port": 6000, "service": ""}
    assert container["livenessProbe"]["grpc"] == {"port": 6000, "service": ""}
    assert container["readinessProbe"]["grpc"] == {"port": 6000, "service": SERVICE_NAME}
    assert SERVICE_NAME == "certa.v1.ReasoningService"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert set(container[probe]) >= {"periodSeconds", "timeoutSeconds", "failureThreshold"}


def test_hardened_security_context() -> None:
    pod = render().controller["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = pod["containers"][0]["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["privileged"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    # The only writable path is an emptyDir on /tmp; the Redis password, the API keys and the tenants file are
    # read-only volumes.
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "redis-password", "mountPath": "/etc/certa/redis", "readOnly": True},
        {"name": "api-keys", "mountPath": "/etc/certa/api-keys", "readOnly": True},
        {"name": "tenants", "mountPath": "/etc/certa/tenants", "readOnly": True},
    ]
    assert pod["volumes"][0] == {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}


@pytest.mark.parametrize("scenario", ["defaults", "dev", "gpu", "digests-and-extra-env"])
def test_grace_period_exceeds_the_pre_stop_pause_and_the_drain(scenario: str) -> None:
    rendered = render_scenario(scenario)
    grace = rendered.controller["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    drain = float(rendered.config["CERTA_DRAIN_TIMEOUT_S"])
    pre_stop = rendered.controller_container.get("lifecycle", {}).get("preStop", {}).get("exec", {"command": [0, 0]})
    pause = float(pre_stop["command"][1])
    assert grace > pause + drain + SERVER_STOP_GRACE_S


def test_resources_and_replicas() -> None:
    rendered = render()
    assert rendered.controller["spec"]["replicas"] == 2
    assert rendered.controller["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    resources = rendered.controller_container["resources"]
    assert resources["requests"] == {"cpu": "250m", "memory": "256Mi"}
    assert resources["limits"] == {"memory": "1Gi"}


def test_config_change_rolls_the_pods() -> None:
    def checksum(*sets: str) -> str:
        return render(*sets).controller["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum() != checksum("controller.config.maxSamples=3")


def test_service_speaks_grpc() -> None:
    service = render().get("Service", "rel-certa")
    assert service["spec"]["ports"] == [
        {"name": "grpc", "port": 50051, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"}
    ]
    assert service["spec"]["selector"] == {
        "app.kubernetes.io/name": "certa",
        "app.kubernetes.io/instance": "rel",
        "app.kubernetes.io/component": "controller",
    }


def test_standard_labels_everywhere() -> None:
    for obj in render_scenario("gpu").objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "certa"
        assert labels["app.kubernetes.io/instance"] == "rel"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "certa"
        assert labels["app.kubernetes.io/component"] in {"controller", "triton", "redis", "test"}
        assert labels["helm.sh/chart"] == "certa-0.1.0"
        assert obj["metadata"].get("namespace", "ml") == "ml"


def test_pdb_variants() -> None:
    (pdb,) = render().of_kind("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "controller"
    (pdb,) = render_scenario("pdb-min-available").of_kind("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == "50%" and "maxUnavailable" not in pdb["spec"]
    assert not render_scenario("pdb-off").of_kind("PodDisruptionBudget")


def test_helm_test_pod_runs_certa_health_against_the_service() -> None:
    (pod,) = render().of_kind("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == render().controller_container["image"]
    assert container["command"] == ["certa"]
    assert container["args"] == ["health", "--address", "rel-certa:50051", "--service", SERVICE_NAME, "--timeout", "10"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["restartPolicy"] == "Never"
    liveness = render("tests.healthService=").of_kind("Pod")[0]["spec"]["containers"][0]["args"]
    assert liveness[liveness.index("--service") + 1] == ""


def test_image_defaults_to_the_app_version() -> None:
    assert render().controller_container["image"] == "certa/controller:0.1.0"
    assert render("controller.image.tag=abc").controller_container["image"] == "certa/controller:abc"


def test_extra_volumes_for_ca_files_and_templates() -> None:
    rendered = render(
        "controller.extraVolumes[0].name=ca",
        "controller.extraVolumes[0].secret.secretName=triton-ca",
        "controller.extraVolumeMounts[0].name=ca",
        "controller.extraVolumeMounts[0].mountPath=/etc/certa/ca",
    )
    pod = rendered.controller["spec"]["template"]["spec"]
    assert {"name": "ca", "secret": {"secretName": "triton-ca"}} in pod["volumes"]
    assert {"name": "ca", "mountPath": "/etc/certa/ca"} in pod["containers"][0]["volumeMounts"]


def test_exit_profiles_from_a_config_map_are_mounted_where_the_controller_reads_them() -> None:
    rendered = render(
        "controller.exitProfiles.existingConfigMap=calibrated-profiles", "controller.config.exitProfile=qwen-gsm8k"
    )
    assert rendered.config["CERTA_EXIT_PROFILES"] == "/etc/certa/exit-profiles"
    assert rendered.config["CERTA_EXIT_PROFILE"] == "qwen-gsm8k"
    mounts = {mount["name"]: mount for mount in rendered.controller_container["volumeMounts"]}
    assert mounts["exit-profiles"]["mountPath"] == "/etc/certa/exit-profiles" and mounts["exit-profiles"]["readOnly"]
    volumes = {volume["name"]: volume for volume in rendered.controller["spec"]["template"]["spec"]["volumes"]}
    assert volumes["exit-profiles"]["configMap"]["name"] == "calibrated-profiles"
    assert render().config["CERTA_EXIT_PROFILES"] == ""
