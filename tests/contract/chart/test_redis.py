"""The controller's state store as rendered: the bundled Redis (Secret, ConfigMap, headless Service, StatefulSet with
its claim) or an external one, and how the controller is wired to either (CERTA_* variables, Secret volumes).

The generated password's `lookup` is rendered against a stub Kubernetes API holding an earlier install's Secret
(tests/contract/chart/kube_api_stub.py). The bundled Redis's rendered start script and redis.conf are run with the local
`redis-server`, with the container's mount paths moved to a temporary directory, and probed with the rendered probe
commands.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from certa.testing.redis_server import free_port
from tests.contract.chart.conftest import NAMESPACE, Rendered, render, render_scenario
from tests.contract.chart.kube_api_stub import KubeApiStub

pytestmark = pytest.mark.chart

REDIS_SELECTOR = {
    "app.kubernetes.io/name": "certa",
    "app.kubernetes.io/instance": "rel",
    "app.kubernetes.io/component": "redis",
}
PASSWORD_FILE = "/etc/certa/redis/password"
TLS_DIR = "/etc/certa/redis-tls"


def pod_spec(workload: dict) -> dict:
    return workload["spec"]["template"]["spec"]


def env_of(container: dict) -> dict[str, dict]:
    """A container's `env` by name (each entry without its name)."""
    return {
        item["name"]: {key: value for key, value in item.items() if key != "name"} for item in container.get("env", [])
    }


def volume_at(rendered: Rendered, path: str) -> tuple[dict, dict]:
    """The controller's volume mount holding `path`, and its volume."""
    pod = pod_spec(rendered.controller)
    (mount,) = [
        mount for mount in pod["containers"][0]["volumeMounts"] if path.startswith(mount["mountPath"].rstrip("/") + "/")
    ]
    (volume,) = [volume for volume in pod["volumes"] if volume["name"] == mount["name"]]
    return mount, volume


def test_bundled_redis_by_default() -> None:
    rendered = render()
    assert rendered.config["CERTA_STORE"] == "redis"
    assert rendered.config["CERTA_REDIS_URL"] == "redis://rel-certa-redis:6379/0"
    assert rendered.config["CERTA_REDIS_CLUSTER"] == "false"
    assert "CERTA_REDIS_USERNAME" not in rendered.config
    service = rendered.get("Service", "rel-certa-redis")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == REDIS_SELECTOR
    assert service["spec"]["ports"] == [{"name": "redis", "port": 6379, "targetPort": "redis", "protocol": "TCP"}]
    statefulset = rendered.redis
    assert statefulset is not None
    assert statefulset["spec"]["replicas"] == 1
    assert statefulset["spec"]["serviceName"] == "rel-certa-redis"
    assert statefulset["spec"]["selector"] == {"matchLabels": REDIS_SELECTOR}
    (container,) = pod_spec(statefulset)["containers"]
    assert container["image"] == "docker.io/library/redis:8.6.4-trixie"
    assert re.fullmatch(r"\d+\.\d+\.\d+-\w+", container["image"].rsplit(":", 1)[1]), "the tag is pinned"
    assert container["ports"] == [{"name": "redis", "containerPort": 6379, "protocol": "TCP"}]


def test_generated_password_secret() -> None:
    rendered = render()
    secret = rendered.get("Secret", "rel-certa-redis")
    assert secret["type"] == "Opaque"
    assert set(secret["data"]) == {"redis-password"}
    assert re.fullmatch(r"[A-Za-z0-9]{32}", base64.b64decode(secret["data"]["redis-password"]).decode())
    # Both sides read the same Secret key: Redis through REDISCLI_AUTH, the controller through a mounted file.
    (container,) = pod_spec(rendered.redis)["containers"]
    assert env_of(container)["REDISCLI_AUTH"] == {
        "valueFrom": {"secretKeyRef": {"name": "rel-certa-redis", "key": "redis-password"}}
    }
    _, volume = volume_at(rendered, PASSWORD_FILE)
    assert volume["secret"]["secretName"] == "rel-certa-redis"
    assert volume["secret"]["items"] == [{"key": "redis-password", "path": "password"}]


def render_against_cluster(*objects: dict) -> Rendered:
    """`helm template --dry-run=server` against a Kubernetes API holding `objects`, so that `lookup` sees them."""
    kinds = {(obj["apiVersion"], obj["kind"]) for obj in render().objects}
    with KubeApiStub(kinds, objects) as api:
        return render(extra=("--dry-run=server", "--disable-openapi-validation", "--kube-apiserver", api.url))


def installed_secret(data: dict[str, str]) -> dict:
    """The generated Secret as an earlier install of release `rel` left it in the cluster."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": "rel-certa-redis",
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {"meta.helm.sh/release-name": "rel", "meta.helm.sh/release-namespace": NAMESPACE},
        },
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def rendered_password(rendered: Rendered) -> str:
    return base64.b64decode(rendered.get("Secret", "rel-certa-redis")["data"]["redis-password"]).decode()


def test_generated_password_is_kept_across_upgrades() -> None:
    """An upgrade renders the password already in the release's Secret, not a new random one."""
    assert rendered_password(render_against_cluster(installed_secret({"redis-password": "kept"}))) == "kept"
    # First install (no Secret yet), or a Secret without the key: a new password.
    for cluster in ((), (installed_secret({"other-key": "kept"}),)):
        assert re.fullmatch(r"[A-Za-z0-9]{32}", rendered_password(render_against_cluster(*cluster)))


def test_existing_password_secret() -> None:
    rendered = render_scenario("redis-existing-secret")
    assert not rendered.of_kind("Secret")
    (container,) = pod_spec(rendered.redis)["containers"]
    assert env_of(container)["REDISCLI_AUTH"] == {
        "valueFrom": {"secretKeyRef": {"name": "certa-redis", "key": "password"}}
    }
    _, volume = volume_at(rendered, PASSWORD_FILE)
    assert volume["secret"] == {
        "secretName": "certa-redis",
        "defaultMode": 0o440,
        "items": [{"key": "password", "path": "password"}],
    }


def test_controller_reads_the_password_from_a_read_only_secret_file() -> None:
    rendered = render()
    env = env_of(rendered.controller_container)
    assert env["CERTA_REDIS_PASSWORD_FILE"] == {"value": PASSWORD_FILE}
    assert "CERTA_REDIS_PASSWORD" not in env and "CERTA_REDIS_PASSWORD" not in rendered.config
    mount, volume = volume_at(rendered, PASSWORD_FILE)
    assert mount == {"name": "redis-password", "mountPath": "/etc/certa/redis", "readOnly": True}
    assert volume["secret"]["defaultMode"] == 0o440  # group-readable: fsGroup 10001 is the controller's group


def test_replica_id_is_the_pod_name() -> None:
    for rendered in (render(), render_scenario("redis-external"), render_scenario("observability")):
        assert env_of(rendered.controller_container)["CERTA_REPLICA_ID"] == {
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}
        }


def test_statefulset_security_context() -> None:
    pod = pod_spec(render().redis)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 999 and pod["securityContext"]["fsGroup"] == 999
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["privileged"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    # Writable: the data claim and the memory-backed directory of the password file; the config is read-only.
    assert container["volumeMounts"] == [
        {"name": "data", "mountPath": "/data"},
        {"name": "config", "mountPath": "/etc/redis", "readOnly": True},
        {"name": "run", "mountPath": "/run/redis"},
    ]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["run"]["emptyDir"]["medium"] == "Memory"
    assert volumes["config"]["configMap"] == {"name": "rel-certa-redis"}
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}


def test_statefulset_probes() -> None:
    (container,) = pod_spec(render("redis.bundled.port=6400").redis)["containers"]
    assert container["livenessProbe"]["exec"]["command"] == ["redis-cli", "-p", "6400", "ping"]
    assert container["readinessProbe"]["exec"]["command"] == ["sh", "-c", 'test "$(redis-cli -p 6400 ping)" = PONG']
    for probe in ("livenessProbe", "readinessProbe"):
        assert set(container[probe]) >= {"periodSeconds", "timeoutSeconds", "failureThreshold"}


def test_statefulset_claim() -> None:
    (claim,) = render().redis["spec"]["volumeClaimTemplates"]
    assert claim["metadata"] == {"name": "data", "labels": REDIS_SELECTOR}
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Gi"}}}
    (claim,) = render_scenario("redis-existing-secret").redis["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    (claim,) = render_scenario("gpu").redis["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "32Gi"


def test_redis_config() -> None:
    rendered = render(
        "redis.bundled.maxMemory=1gb", "redis.bundled.appendfsync=always", "redis.bundled.extraConfig=hz 20"
    )
    conf = rendered.get("ConfigMap", "rel-certa-redis")["data"]["redis.conf"]
    directives = [line for line in conf.splitlines() if line and not line.startswith("#")]
    assert directives == [
        "port 6379",
        "bind * -::*",
        "dir /data",
        "appendonly yes",
        "appendfsync always",
        'save ""',
        "maxmemory 1gb",
        "maxmemory-policy noeviction",
        "hz 20",
        "include /run/redis/auth.conf",
    ]
    # A config change rolls the Redis pod.
    annotations = rendered.redis["spec"]["template"]["metadata"]["annotations"]
    assert (
        annotations["checksum/config"]
        != render().redis["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    )


@pytest.mark.parametrize("scenario", ["redis-external", "redis-external-tls", "redis-cluster"])
def test_external_redis_renders_no_redis_objects(scenario: str) -> None:
    rendered = render_scenario(scenario)
    assert not [obj for obj in rendered.objects if obj["metadata"]["name"].startswith("rel-certa-redis")]


def test_external_redis_with_a_password_secret() -> None:
    rendered = render_scenario("redis-external")
    assert rendered.config["CERTA_REDIS_URL"] == "redis://redis.data.svc:6379/0"
    env = env_of(rendered.controller_container)
    assert env["CERTA_REDIS_PASSWORD_FILE"] == {"value": PASSWORD_FILE}
    assert not [name for name in env if name.startswith("CERTA_REDIS_TLS_")]
    mount, volume = volume_at(rendered, PASSWORD_FILE)
    assert mount["readOnly"] is True
    assert volume["secret"]["secretName"] == "certa-redis"
    assert volume["secret"]["items"] == [{"key": "password", "path": "password"}]


def test_external_redis_without_a_password() -> None:
    rendered = render("redis.bundled.enabled=false", "redis.external.url=unix:///run/redis/redis.sock")
    assert rendered.config["CERTA_REDIS_URL"] == "unix:///run/redis/redis.sock"
    # No password file and no Redis volume: only the replica id, the API keys and the tenants file.
    assert set(env_of(rendered.controller_container)) == {
        "CERTA_REPLICA_ID",
        "CERTA_AUTH_API_KEYS_FILE",
        "CERTA_TENANTS_FILE",
    }
    assert [volume["name"] for volume in pod_spec(rendered.controller)["volumes"]] == ["tmp", "api-keys", "tenants"]


def test_external_redis_over_tls_with_a_client_certificate() -> None:
    rendered = render_scenario("redis-external-tls")
    assert rendered.config["CERTA_REDIS_URL"] == "rediss://redis.example.internal:6380/1"
    assert rendered.config["CERTA_REDIS_USERNAME"] == "certa"
    env = env_of(rendered.controller_container)
    assert {name: item["value"] for name, item in env.items() if name.startswith("CERTA_REDIS_TLS_")} == {
        "CERTA_REDIS_TLS_CA_FILE": f"{TLS_DIR}/ca.crt",
        "CERTA_REDIS_TLS_CERT_FILE": f"{TLS_DIR}/tls.crt",
        "CERTA_REDIS_TLS_KEY_FILE": f"{TLS_DIR}/tls.key",
    }
    mount, volume = volume_at(rendered, f"{TLS_DIR}/ca.crt")
    assert mount == {"name": "redis-tls", "mountPath": TLS_DIR, "readOnly": True}
    assert volume["secret"]["secretName"] == "certa-redis-tls"
    assert volume["secret"]["items"] == [
        {"key": "ca.crt", "path": "ca.crt"},
        {"key": "tls.crt", "path": "tls.crt"},
        {"key": "tls.key", "path": "tls.key"},
    ]
    _, volume = volume_at(rendered, PASSWORD_FILE)
    assert volume["secret"]["secretName"] == "certa-redis"


def test_external_redis_over_tls_with_a_ca_only() -> None:
    rendered = render(
        "redis.bundled.enabled=false",
        "redis.external.url=rediss://r.example:6380/0",
        "redis.external.tls.enabled=true",
        "redis.external.tls.existingSecret=ca",
        "redis.external.tls.caKey=bundle.pem",
    )
    env = env_of(rendered.controller_container)
    assert [name for name in env if name.startswith("CERTA_REDIS_TLS_")] == ["CERTA_REDIS_TLS_CA_FILE"]
    _, volume = volume_at(rendered, f"{TLS_DIR}/ca.crt")
    assert volume["secret"]["items"] == [{"key": "bundle.pem", "path": "ca.crt"}]


def test_rediss_without_tls_files_uses_the_system_cas() -> None:
    rendered = render("redis.bundled.enabled=false", "redis.external.url=rediss://r.example:6380/0")
    assert not [name for name in env_of(rendered.controller_container) if name.startswith("CERTA_REDIS_TLS_")]


def test_redis_cluster() -> None:
    rendered = render_scenario("redis-cluster")
    assert rendered.config["CERTA_REDIS_CLUSTER"] == "true"
    assert rendered.config["CERTA_REDIS_URL"] == "redis://redis-cluster.data.svc:7000/0"


class RedisContainer:
    """The rendered Redis container's start script run locally: /etc/redis, /run/redis and /data are directories
    under `root`, REDISCLI_AUTH is the password, and the probes are the rendered exec commands."""

    def __init__(self, rendered: Rendered, root: Path, password: str) -> None:
        self.statefulset = rendered.redis
        files = rendered.get("ConfigMap", "rel-certa-redis")["data"]
        self.paths = {"/etc/redis": root / "etc", "/run/redis": root / "run", "/data": root / "data"}
        for directory in self.paths.values():
            directory.mkdir(parents=True)
        for name, text in files.items():
            (self.paths["/etc/redis"] / name).write_text(self.relocate(text))
        (container,) = pod_spec(self.statefulset)["containers"]
        self.container = container
        self.env = {"PATH": os.environ["PATH"], "REDISCLI_AUTH": password}
        self.process: subprocess.Popen[bytes] | None = None

    def relocate(self, text: str) -> str:
        for mount, directory in self.paths.items():
            text = re.sub(rf"{re.escape(mount)}(?=/|\s|$)", str(directory), text)
        return text

    def start(self) -> None:
        command = [self.relocate(part) for part in self.container["command"]]
        self.process = subprocess.Popen(command, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def probe(self, name: str, env: dict[str, str] | None = None) -> int:
        command = self.container[name]["exec"]["command"]
        return subprocess.run(
            command, env=self.env if env is None else env, capture_output=True, timeout=10, check=False
        ).returncode

    def wait_ready(self, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.probe("readinessProbe") != 0:
            assert self.process is not None and self.process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "the readiness probe never passed"
            time.sleep(0.1)

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=10)


@pytest.fixture
def redis_container(tmp_path: Path) -> Iterator[RedisContainer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (Debian package redis-server; .ci/run installs it)")
    port = free_port()
    # An existing Secret's password may hold anything but a newline: quotes, backslashes, spaces, dollars.
    container = RedisContainer(render(f"redis.bundled.port={port}"), tmp_path, 'p"a\\ss w$rd')
    yield container
    if container.process is not None and container.process.poll() is None:
        container.process.kill()
        container.process.wait()


def test_rendered_redis_starts_with_the_password_and_answers_the_probes(redis_container: RedisContainer) -> None:
    redis_container.start()
    redis_container.wait_ready()
    assert redis_container.probe("livenessProbe") == 0
    # Without the password Redis answers NOAUTH: alive (redis-cli exits 0 on any reply) but not ready.
    no_password = {"PATH": os.environ["PATH"]}
    assert redis_container.probe("readinessProbe", env=no_password) != 0
    assert redis_container.probe("livenessProbe", env=no_password) == 0
    # The password is in a file readable only by Redis's user, never on its command line.
    assert redis_container.process is not None
    auth = redis_container.paths["/run/redis"] / "auth.conf"
    assert auth.stat().st_mode & 0o077 == 0
    assert "w$rd" not in Path(f"/proc/{redis_container.process.pid}/cmdline").read_text()
    # The append-only file is on the data volume.
    assert (redis_container.paths["/data"] / "appendonlydir").is_dir()
    assert redis_container.stop() == 0
