"""TLS (an existing Secret or a cert-manager Certificate, mutual TLS), authentication (API keys, JWT, client
certificates, or explicitly none) and per-tenant quotas, as rendered: the files the controller reads are mounted
from Secrets and ConfigMaps as read-only directories (never subPath, which the kubelet does not update), and the
probes move to the plaintext health-only port when the gRPC port speaks TLS."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from certa.config import AuthSettings, TlsSettings
from certa.core.budget_pool import PoolPolicy
from certa.server import SERVICE_NAME
from certa.tenants import TenantPolicies, TenantPolicy
from tests.contract.chart.conftest import (
    API_KEYS_SECRET,
    CERT_MANAGER_API,
    CHART,
    Rendered,
    helm,
    render,
    render_error,
    render_scenario,
)
from tests.contract.chart.test_controller import settings_of

pytestmark = pytest.mark.chart

PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
TLS = ("tls.enabled=true", "tls.existingSecret=certa-tls")
CERT_MANAGER = ("tls.enabled=true", "tls.certManager.enabled=true", "tls.certManager.issuerRef.name=certa-ca")
CERT_MANAGER_EXTRA = ("--api-versions", CERT_MANAGER_API)


def pod_spec(rendered: Rendered) -> dict:
    return rendered.controller["spec"]["template"]["spec"]


def volume(rendered: Rendered, name: str) -> dict:
    (found,) = [item for item in pod_spec(rendered)["volumes"] if item["name"] == name]
    return found


def mount(rendered: Rendered, name: str) -> dict:
    (found,) = [item for item in rendered.controller_container["volumeMounts"] if item["name"] == name]
    return found


def env_values(rendered: Rendered) -> dict[str, str]:
    return {item["name"]: item["value"] for item in rendered.controller_container["env"] if "value" in item}


def volume_names(rendered: Rendered) -> set[str]:
    return {item["name"] for item in pod_spec(rendered)["volumes"]}


# -- Authentication ---------------------------------------------------------------------------------------------


def test_the_bare_defaults_are_refused_naming_the_auth_values() -> None:
    """The controller refuses to start without authentication: so does the chart, saying what to set."""
    message = render_error(auth=())
    assert "no authentication configured" in message
    for value in (
        "auth.apiKeys.existingSecret",
        "auth.jwt.jwks.existingSecret",
        "auth.jwt.jwks.existingConfigMap",
        "auth.jwt.issuer",
        "auth.jwt.audience",
        "auth.clientCert=true",
        "tls.clientAuth=true",
        "auth.disabled=true",
        "certa auth new-key",
    ):
        assert value in message, value
    # The same check holds without the schema (the schema cannot say it; the template does).
    assert "no authentication configured" in render_error(auth=(), extra=("--skip-schema-validation",))


def test_api_keys_are_a_read_only_directory_mount_of_the_secret() -> None:
    rendered = render()
    assert volume(rendered, "api-keys") == {
        "name": "api-keys",
        "secret": {
            "secretName": API_KEYS_SECRET,
            "defaultMode": 0o440,
            "items": [{"key": "keys.json", "path": "keys.json"}],
        },
    }
    assert mount(rendered, "api-keys") == {"name": "api-keys", "mountPath": "/etc/certa/api-keys", "readOnly": True}
    assert env_values(rendered)["CERTA_AUTH_API_KEYS_FILE"] == "/etc/certa/api-keys/keys.json"
    # Another key name in the Secret; the file keeps its name.
    custom = render("auth.apiKeys.key=certa-keys")
    assert volume(custom, "api-keys")["secret"]["items"] == [{"key": "certa-keys", "path": "keys.json"}]


@pytest.mark.parametrize("scenario", ["auth-jwt-secret", "auth-jwt-configmap"])
def test_jwt_reads_a_jwks_file_and_checks_issuer_audience_and_claim(scenario: str, tmp_path: Path) -> None:
    rendered = render_scenario(scenario)
    jwks = volume(rendered, "jwks")
    if scenario == "auth-jwt-secret":
        assert jwks["secret"] == {
            "secretName": "certa-jwks",
            "defaultMode": 0o440,
            "items": [{"key": "jwks.json", "path": "jwks.json"}],
        }
        # JWT alone: no API keys.
        assert "api-keys" not in volume_names(rendered)
    else:
        assert jwks["configMap"] == {
            "name": "certa-jwks",
            "defaultMode": 0o440,
            "items": [{"key": "keys.json", "path": "jwks.json"}],
        }
        assert "api-keys" in volume_names(rendered)
    assert mount(rendered, "jwks") == {"name": "jwks", "mountPath": "/etc/certa/jwks", "readOnly": True}
    auth = settings_of(rendered, tmp_path).auth
    assert auth.jwks_file.endswith("/etc/certa/jwks/jwks.json")
    assert (auth.jwt_issuer, auth.jwt_audience) == ("https://issuer.example", "certa")
    assert auth.jwt_tenant_claim == ("org" if scenario == "auth-jwt-secret" else "tenant")
    assert auth.disabled is False and auth.client_cert is False


def test_auth_disabled_mounts_nothing_and_sets_the_flag(tmp_path: Path) -> None:
    rendered = render_scenario("auth-disabled")
    assert rendered.config["CERTA_AUTH_DISABLED"] == "true"
    assert not {"api-keys", "jwks"} & volume_names(rendered)
    assert not {"CERTA_AUTH_API_KEYS_FILE", "CERTA_AUTH_JWKS_FILE"} & set(env_values(rendered))
    assert settings_of(rendered, tmp_path).auth == dataclasses.replace(AuthSettings(), disabled=True)
    assert render().config["CERTA_AUTH_DISABLED"] == "false"


def test_notes_warn_loudly_when_authentication_is_disabled() -> None:
    def notes(*sets: str) -> str:
        args = ["install", "certa", str(CHART), "--namespace", "ml", "--dry-run=client"]
        for assignment in sets:
            args += ["--set", assignment]
        result = helm(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout.split("NOTES:", 1)[1]

    disabled = notes("auth.disabled=true")
    assert "WARNING: AUTHENTICATION IS DISABLED (auth.disabled=true)" in disabled.split("\n\n", 2)[1]
    assert "Use this for local development only" in disabled
    assert "-H 'x-certa-tenant: dev'" in disabled
    keys = notes(f"auth.apiKeys.existingSecret={API_KEYS_SECRET}")
    assert "AUTHENTICATION IS DISABLED" not in keys
    assert f"Authentication: API keys (Secret {API_KEYS_SECRET})" in keys
    assert '-H "authorization: Bearer $CERTA_API_KEY"' in keys
    assert "grpcurl -plaintext" in keys
    tls = notes(f"auth.apiKeys.existingSecret={API_KEYS_SECRET}", *TLS, "tls.clientAuth=true")
    assert "grpcurl -cacert ca.crt -servername certa -cert client.crt -key client.key" in tls
    assert "-plaintext" not in tls
    assert "plaintext health-only port 8086" in tls


# -- TLS --------------------------------------------------------------------------------------------------------


def test_without_tls_the_probes_use_the_grpc_port_and_nothing_is_mounted() -> None:
    rendered = render()
    container = rendered.controller_container
    assert [port["name"] for port in container["ports"]] == ["grpc"]
    assert {container[probe]["grpc"]["port"] for probe in PROBES} == {50051}
    assert rendered.config["CERTA_HEALTH_LISTEN_ADDRESS"] == ""
    assert not {"tls", "client-ca"} & volume_names(rendered)
    assert not [name for name in env_values(rendered) if name.startswith("CERTA_TLS_")]
    assert not rendered.of_kind("Certificate")


def test_tls_from_an_existing_secret(tmp_path: Path) -> None:
    rendered = render_scenario("tls-existing-secret")
    assert volume(rendered, "tls") == {
        "name": "tls",
        "secret": {
            "secretName": "certa-tls",
            "defaultMode": 0o440,
            "items": [{"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}],
        },
    }
    assert mount(rendered, "tls") == {"name": "tls", "mountPath": "/etc/certa/tls", "readOnly": True}
    env = env_values(rendered)
    assert env["CERTA_TLS_CERT_FILE"] == "/etc/certa/tls/tls.crt"
    assert env["CERTA_TLS_KEY_FILE"] == "/etc/certa/tls/tls.key"
    assert "CERTA_TLS_CLIENT_CA_FILE" not in env
    settings = settings_of(rendered, tmp_path)
    assert settings.tls.enabled and not settings.tls.client_ca_file
    assert settings.health_listen_address == "0.0.0.0:8086"
    assert not rendered.of_kind("Certificate")


@pytest.mark.parametrize("scenario", ["tls-existing-secret", "tls-cert-manager-mtls", "tls-client-ca-secret"])
def test_with_tls_the_probes_and_the_test_use_the_plaintext_health_port(scenario: str) -> None:
    rendered = render_scenario(scenario)
    container = rendered.controller_container
    assert container["ports"] == [
        {"name": "grpc", "containerPort": 50051, "protocol": "TCP"},
        {"name": "health", "containerPort": 8086, "protocol": "TCP"},
    ]
    assert container["startupProbe"]["grpc"] == {"port": 8086, "service": ""}
    assert container["livenessProbe"]["grpc"] == {"port": 8086, "service": ""}
    assert container["readinessProbe"]["grpc"] == {"port": 8086, "service": SERVICE_NAME}
    assert rendered.config["CERTA_HEALTH_LISTEN_ADDRESS"] == "0.0.0.0:8086"
    # The Service keeps the gRPC port and adds the plaintext health port, which `helm test` calls.
    assert rendered.get("Service", "rel-certa")["spec"]["ports"] == [
        {"name": "grpc", "port": 50051, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"},
        {"name": "health", "port": 8086, "targetPort": "health", "protocol": "TCP", "appProtocol": "grpc"},
    ]
    (pod,) = rendered.of_kind("Pod")
    args = pod["spec"]["containers"][0]["args"]
    assert args[args.index("--address") + 1] == "rel-certa:8086"


def test_the_health_port_is_configurable() -> None:
    rendered = render(*TLS, "controller.healthPort=9000", "controller.port=6000")
    container = rendered.controller_container
    assert {container[probe]["grpc"]["port"] for probe in PROBES} == {9000}
    assert rendered.config["CERTA_HEALTH_LISTEN_ADDRESS"] == "0.0.0.0:9000"
    assert rendered.config["CERTA_LISTEN_ADDRESS"] == "0.0.0.0:6000"
    assert "controller.healthPort (6000) must differ from controller.port" in render_error(
        *TLS, "controller.healthPort=6000", "controller.port=6000"
    )


def test_mutual_tls_with_the_ca_of_the_tls_secret(tmp_path: Path) -> None:
    rendered = render_scenario("tls-cert-manager-mtls")
    assert volume(rendered, "tls")["secret"] == {
        "secretName": "rel-certa-tls",
        "defaultMode": 0o440,
        "items": [
            {"key": "tls.crt", "path": "tls.crt"},
            {"key": "tls.key", "path": "tls.key"},
            {"key": "ca.crt", "path": "ca.crt"},
        ],
    }
    assert "client-ca" not in volume_names(rendered)
    assert env_values(rendered)["CERTA_TLS_CLIENT_CA_FILE"] == "/etc/certa/tls/ca.crt"
    assert rendered.config["CERTA_AUTH_CLIENT_CERT"] == "true"
    settings = settings_of(rendered, tmp_path)
    assert settings.tls.client_ca_file.endswith("/etc/certa/tls/ca.crt")
    assert settings.auth.client_cert is True and settings.auth.api_keys_file


def test_mutual_tls_with_a_separate_client_ca_secret(tmp_path: Path) -> None:
    rendered = render_scenario("tls-client-ca-secret")
    assert [item["key"] for item in volume(rendered, "tls")["secret"]["items"]] == ["tls.crt", "tls.key"]
    assert volume(rendered, "client-ca") == {
        "name": "client-ca",
        "secret": {
            "secretName": "client-ca",
            "defaultMode": 0o440,
            "items": [{"key": "bundle.pem", "path": "ca.crt"}],
        },
    }
    assert mount(rendered, "client-ca") == {"name": "client-ca", "mountPath": "/etc/certa/client-ca", "readOnly": True}
    assert env_values(rendered)["CERTA_TLS_CLIENT_CA_FILE"] == "/etc/certa/client-ca/ca.crt"
    assert settings_of(rendered, tmp_path).tls == TlsSettings(
        cert_file=str(tmp_path / "etc/certa/tls/tls.crt"),
        key_file=str(tmp_path / "etc/certa/tls/tls.key"),
        client_ca_file=str(tmp_path / "etc/certa/client-ca/ca.crt"),
    )


def test_cert_manager_certificate_writes_the_mounted_secret() -> None:
    """cert-manager.io/v1 Certificate has no schema in kubernetes-validate: its shape is checked here."""
    rendered = render_scenario("tls-cert-manager-mtls")
    (certificate,) = rendered.of_kind("Certificate")
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    assert certificate["metadata"]["name"] == "rel-certa"
    assert certificate["metadata"]["namespace"] == "ml"
    assert certificate["metadata"]["labels"]["app.kubernetes.io/component"] == "controller"
    spec = certificate["spec"]
    assert set(spec) == {"secretName", "dnsNames", "duration", "renewBefore", "privateKey", "usages", "issuerRef"}
    assert spec["secretName"] == volume(rendered, "tls")["secret"]["secretName"] == "rel-certa-tls"
    # The Service's names, as clients in the cluster address it.
    service = rendered.get("Service", "rel-certa")["metadata"]["name"]
    assert spec["dnsNames"] == [service, f"{service}.ml", f"{service}.ml.svc", f"{service}.ml.svc.cluster.local"]
    assert spec["issuerRef"] == {"name": "certa-ca", "kind": "Issuer", "group": "cert-manager.io"}
    assert (spec["duration"], spec["renewBefore"]) == ("2160h", "360h")
    assert spec["privateKey"] == {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"}
    assert spec["usages"] == ["server auth", "digital signature"]


def test_cert_manager_certificate_options() -> None:
    rendered = render(
        *CERT_MANAGER,
        "tls.certManager.issuerRef.kind=ClusterIssuer",
        "tls.certManager.issuerRef.group=awspca.cert-manager.io",
        "tls.certManager.dnsNames={certa.example.com,certa.ml.svc}",
        "tls.certManager.duration=720h",
        "tls.certManager.renewBefore=240h",
        "tls.certManager.privateKey.algorithm=RSA",
        "tls.certManager.privateKey.size=3072",
        extra=CERT_MANAGER_EXTRA,
    )
    (certificate,) = rendered.of_kind("Certificate")
    spec = certificate["spec"]
    assert spec["dnsNames"] == ["certa.example.com", "certa.ml.svc"]
    assert spec["issuerRef"] == {"name": "certa-ca", "kind": "ClusterIssuer", "group": "awspca.cert-manager.io"}
    assert (spec["duration"], spec["renewBefore"]) == ("720h", "240h")
    assert spec["privateKey"] == {"algorithm": "RSA", "size": 3072, "rotationPolicy": "Always"}
    assert spec["usages"] == ["server auth", "digital signature", "key encipherment"]


def test_cert_manager_needs_its_api() -> None:
    """Without cert-manager the Secret would never exist and the pods would wait forever: refuse to render."""
    message = render_error(*CERT_MANAGER)
    assert "tls.certManager.enabled needs cert-manager: the cluster does not serve cert-manager.io/v1" in message
    assert "--api-versions cert-manager.io/v1" in message


def test_every_file_the_controller_reads_is_a_read_only_directory_mount() -> None:
    """Secret and ConfigMap volumes are mounted whole (no subPath: the kubelet never updates those), read-only, and
    every file variable names a file inside one of them."""
    for scenario in ("tls-cert-manager-mtls", "tls-client-ca-secret", "auth-jwt-configmap", "quotas"):
        rendered = render_scenario(scenario)
        volumes = {item["name"]: item for item in pod_spec(rendered)["volumes"]}
        mounts = rendered.controller_container["volumeMounts"]
        directories = {}
        for item in mounts:
            assert "subPath" not in item and "subPathExpr" not in item, item
            source = volumes[item["name"]]
            if "secret" in source or "configMap" in source:
                assert item["readOnly"] is True, item
                paths = [entry["path"] for entry in (source.get("secret") or source["configMap"])["items"]]
                directories[item["mountPath"]] = paths
        for name, value in env_values(rendered).items():
            if name.endswith("_FILE"):
                directory, _, file = value.rpartition("/")
                assert file in directories.get(directory, []), (scenario, name, value)


# -- Quotas -----------------------------------------------------------------------------------------------------


def tenants_file(rendered: Rendered) -> dict:
    return json.loads(rendered.get("ConfigMap", "rel-certa-tenants")["data"]["tenants.json"])


def test_tenants_file_is_mounted_from_its_configmap() -> None:
    rendered = render()
    assert volume(rendered, "tenants") == {
        "name": "tenants",
        "configMap": {
            "name": "rel-certa-tenants",
            "defaultMode": 0o440,
            "items": [{"key": "tenants.json", "path": "tenants.json"}],
        },
    }
    assert mount(rendered, "tenants") == {"name": "tenants", "mountPath": "/etc/certa/tenants", "readOnly": True}
    assert env_values(rendered)["CERTA_TENANTS_FILE"] == "/etc/certa/tenants/tenants.json"


def test_default_quotas_are_the_controllers_defaults(tmp_path: Path) -> None:
    document = tenants_file(render())
    fields = {field.name for field in dataclasses.fields(TenantPolicy)}
    # Every field of the controller's policy, each at its default (0: unlimited; no content in logs).
    defaults = json.loads(json.dumps(dataclasses.asdict(TenantPolicy()), default=sorted))  # frozensets as lists
    assert document == {"default": defaults, "tenants": {}}
    assert set(document["default"]) == fields
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps(document))
    assert TenantPolicies(str(path)).of("anyone") == TenantPolicy()


def test_quotas_values_become_the_tenants_file(tmp_path: Path) -> None:
    document = tenants_file(render_scenario("quotas"))
    assert document == {
        "default": {
            "max_in_flight": 32,
            "tokens_per_minute": 200000,
            "max_tokens_per_request": 0,
            "max_batch_size": 0,
            "log_content": False,
            "weight": 1,
            "models": [],
            # Only the pool settings given: the controller has defaults for max_wait_s and exploration.
            "pools": {"default": {"samples_per_second": 20, "burst": 400}},
        },
        # Only the fields a tenant sets: the others come from the default.
        "tenants": {
            "acme": {
                "tokens_per_minute": 100000,
                "log_content": True,
                "pools": {"chat": {"samples_per_second": 2.5, "burst": 60, "max_wait_s": 1.5, "exploration": 0.25}},
            },
            "beta-2": {"max_batch_size": 8},
        },
    }
    # Fractions stay fractions, burst an integer (the controller refuses a fractional burst).
    chat = document["tenants"]["acme"]["pools"]["chat"]
    assert type(chat["samples_per_second"]) is float and type(chat["burst"]) is int
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps(document))
    policies = TenantPolicies(str(path))
    default = TenantPolicy(
        max_in_flight=32, tokens_per_minute=200000, pools={"default": PoolPolicy(samples_per_second=20.0, burst=400)}
    )
    assert policies.of("someone-else") == default
    # A tenant's pools replace the default's as a whole.
    assert policies.of("acme") == dataclasses.replace(
        default,
        tokens_per_minute=100000,
        log_content=True,
        pools={"chat": PoolPolicy(samples_per_second=2.5, burst=60, max_wait_s=1.5, exploration=0.25)},
    )
    assert policies.of("beta-2") == dataclasses.replace(default, max_batch_size=8)
    assert policies.of("someone-else").pools["default"] == PoolPolicy(20.0, 400, max_wait_s=2.0, exploration=0.1)


def test_a_tenant_may_have_no_pools(tmp_path: Path) -> None:
    """`pools: {}` on a tenant is rendered (it takes the default's pools away); a tenant without `pools` gets none."""
    document = tenants_file(
        render_scenario("quotas", "--set-json", "quotas.tenants.beta-2.pools={}", "--set", "quotas.default.pools=null")
    )
    assert document["default"]["pools"] == {}
    assert document["tenants"]["beta-2"] == {"max_batch_size": 8, "pools": {}}
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps(document))
    assert TenantPolicies(str(path)).of("beta-2").pools == {}


def test_gpu_values_quotas_parse(tmp_path: Path) -> None:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps(tenants_file(render_scenario("gpu"))))
    policies = TenantPolicies(str(path))
    assert policies.of("acme").max_in_flight == 128
    assert policies.of("acme-debug").log_content is True
    assert policies.of("other").max_in_flight == 32 and policies.of("other").log_content is False
    pool = PoolPolicy(samples_per_second=20.0, burst=400, max_wait_s=2.0)
    assert policies.of("other").pools == policies.of("acme").pools == {"default": pool}


def test_quota_changes_apply_without_rolling_the_pods() -> None:
    """The tenants ConfigMap is outside the pods' checksum (the controller re-reads the file); the settings
    ConfigMap, with the authentication variables, is inside."""

    def checksum(*sets: str) -> str:
        return render(*sets).controller["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum("quotas.default.maxInFlight=5") == checksum()
    assert checksum("auth.jwt.tenantClaim=org") != checksum()
