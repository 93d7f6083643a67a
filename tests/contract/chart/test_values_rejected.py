"""Bad values are refused, with a message naming the value: by values.schema.json first, by template checks for
what a schema cannot say (and again, for the combinations, when schema validation is skipped)."""

from __future__ import annotations

import pytest

from tests.contract.chart.conftest import render_error

pytestmark = pytest.mark.chart

SCHEMA_CASES = [
    (("autoscaling.enabled=true", "keda.enabled=true"), "/keda/enabled"),
    (("controller.replicaCount=0",), "/controller/replicaCount"),
    (("controller.replicaCount=-2",), "/controller/replicaCount"),
    (("triton.enabled=false",), "/triton/externalUrl"),
    (("triton.enabled=false", "triton.externalUrl=http://triton:8000"), "/triton/externalUrl"),
    (("controller.port=grpc",), "/controller/port"),
    (("controller.port=70000",), "/controller/port"),
    (("controller.config.maxSamples=many",), "/controller/config/maxSamples"),
    (("controller.config.maxTokenBudget=0",), "/controller/config/maxTokenBudget"),
    (("controller.config.drainTimeoutSeconds=soon",), "/controller/config/drainTimeoutSeconds"),
    (("controller.config.logFormat=xml",), "/controller/config/logFormat"),
    (("controller.config.logLevel=LOUD",), "/controller/config/logLevel"),
    (("controller.config.backendName=a=b",), "/controller/config/backendName"),
    (
        ("controller.config.extraBackends[0].name=x", "controller.config.extraBackends[0].url=ftp://x"),
        "/controller/config/extraBackends/0/url",
    ),
    (("autoscaling.enabled=yes-please",), "/autoscaling/enabled"),
    (("autoscaling.minReplicas=0",), "/autoscaling/minReplicas"),
    (("keda.minReplicaCount=0",), "/keda/minReplicaCount"),
    (("triton.gpu.count=-1",), "/triton/gpu/count"),
    (("triton.modelRepository.type=s3",), "/triton/modelRepository/type"),
    (("triton.modelRepository.claimName=",), "/triton/modelRepository/claimName"),
    (("serviceMonitor.interval=often",), "/serviceMonitor/interval"),
    (("metrics.enabled=maybe",), "/metrics/enabled"),
    (("otel.endpoint=otel-collector:4317",), "/otel/endpoint"),
    (("otel.tracesSampler=sometimes",), "/otel/tracesSampler"),
    (("tests.healthService=other",), "/tests/healthService"),
    (("controllr.replicaCount=2",), "'controllr' not allowed"),
    # The state store: exactly one Redis, a URL without credentials, TLS and cluster settings that can work.
    (("redis.bundled.enabled=false",), "/redis/external/url"),
    (("redis.external.url=redis://redis.data.svc:6379/0",), "/redis/external/url"),
    (("redis.external.existingSecret=certa-redis",), "/redis/external/existingSecret"),
    (("redis.external.cluster=true",), "/redis/external/cluster"),
    (("redis.bundled.enabled=false", "redis.external.url=redis://certa:hunter2@redis:6379/0"), "/redis/external/url"),
    (("redis.bundled.enabled=false", "redis.external.url=http://redis:6379"), "/redis/external/url"),
    (
        (
            "redis.bundled.enabled=false",
            "redis.external.url=redis://redis:6379/0",
            "redis.external.tls.enabled=true",
            "redis.external.tls.existingSecret=ca",
        ),
        "/redis/external/url",
    ),
    (
        ("redis.bundled.enabled=false", "redis.external.url=rediss://redis:6380/0", "redis.external.tls.enabled=true"),
        "/redis/external/tls/existingSecret",
    ),
    (
        (
            "redis.bundled.enabled=false",
            "redis.external.url=rediss://redis:6380/0",
            "redis.external.tls.certKey=tls.crt",
        ),
        "/redis/external/tls/keyKey",
    ),
    (
        ("redis.bundled.enabled=false", "redis.external.url=unix:///run/redis.sock", "redis.external.cluster=true"),
        "/redis/external/url",
    ),
    (("redis.bundled.enabled=yes",), "/redis/bundled/enabled"),
    (("redis.bundled.port=0",), "/redis/bundled/port"),
    (("redis.bundled.image.tag=",), "/redis/bundled/image/tag"),
    (("redis.bundled.appendfsync=sometimes",), "/redis/bundled/appendfsync"),
    (("redis.bundled.maxMemory=lots",), "/redis/bundled/maxMemory"),
    (("redis.bundled.persistence.size=big",), "/redis/bundled/persistence/size"),
    (("redis.bundled.persistence.accessModes={ReadWriteSometimes}",), "/redis/bundled/persistence/accessModes/0"),
    (("redis.external.clustr=true",), "'clustr' not allowed"),
    (("controller.config.stateTtlSeconds=1.5",), "/controller/config/stateTtlSeconds"),
    (("controller.config.resultTtlSeconds=0",), "/controller/config/resultTtlSeconds"),
    (("controller.config.leaseSeconds=soon",), "/controller/config/leaseSeconds"),
    (("controller.config.sweepIntervalSeconds=0",), "/controller/config/sweepIntervalSeconds"),
    (("controller.config.redisTimeoutSeconds=-1",), "/controller/config/redisTimeoutSeconds"),
    (("controller.config.redisPoolSize=0",), "/controller/config/redisPoolSize"),
    (("controller.config.redisKeyPrefix=certa{1}",), "/controller/config/redisKeyPrefix"),
    (("networkPolicy.egress.redis.ports[0]=redis",), "/networkPolicy/egress/redis/ports/0"),
    # TLS, authentication and quotas: impossible combinations and wrong types.
    (("tls.enabled=true",), "/tls/existingSecret"),
    (("tls.enabled=on",), "/tls/enabled"),
    (("tls.clientAuth=true",), "/tls/enabled"),
    (("tls.certManager.enabled=true", "tls.certManager.issuerRef.name=ca"), "/tls/enabled"),
    (("tls.enabled=true", "tls.certManager.enabled=true"), "/tls/certManager/issuerRef/name"),
    (
        (
            "tls.enabled=true",
            "tls.existingSecret=x",
            "tls.certManager.enabled=true",
            "tls.certManager.issuerRef.name=c",
        ),
        "/tls/existingSecret",
    ),
    (("tls.enabled=true", "tls.existingSecret=x", "tls.clientCaSecret=ca"), "/tls/clientAuth"),
    (("tls.existingSecret=Certa_TLS",), "/tls/existingSecret"),
    (("tls.certManager.duration=90d",), "/tls/certManager/duration"),
    (("tls.certManager.privateKey.algorithm=DSA",), "/tls/certManager/privateKey/algorithm"),
    (("tls.certManager.issuerRef.namespace=x",), "'namespace' not allowed"),
    (("controller.healthPort=0",), "/controller/healthPort"),
    (("auth.clientCert=true",), "/tls/clientAuth"),
    (("tls.enabled=true", "tls.existingSecret=x", "auth.clientCert=true"), "/tls/clientAuth"),
    (("auth.jwt.jwks.existingSecret=jwks",), "/auth/jwt/issuer"),
    (("auth.jwt.jwks.existingConfigMap=jwks", "auth.jwt.issuer=https://i"), "/auth/jwt/audience"),
    (("auth.jwt.issuer=https://i", "auth.jwt.audience=certa"), "/auth/jwt/jwks/existingSecret"),
    (
        (
            "auth.jwt.jwks.existingSecret=j",
            "auth.jwt.jwks.existingConfigMap=j",
            "auth.jwt.issuer=https://i",
            "auth.jwt.audience=certa",
        ),
        "/auth/jwt/jwks/existingConfigMap",
    ),
    (("auth.jwt.tenantClaim=",), "/auth/jwt/tenantClaim"),
    (("auth.disabled=true",), "/auth/apiKeys/existingSecret"),
    (("auth.disabled=yes",), "/auth/disabled"),
    (("auth.apiKey.existingSecret=k",), "'apiKey' not allowed"),
    (("quotas.default.maxInFlight=-1",), "/quotas/default/maxInFlight"),
    (("quotas.default.tokensPerMinute=lots",), "/quotas/default/tokensPerMinute"),
    (("quotas.default.logContent=yes",), "/quotas/default/logContent"),
    (("quotas.tenants.acme.maxBatchSize=1.5",), "/quotas/tenants/acme/maxBatchSize"),
    (("quotas.tenants.acme.tokensPerMinite=1",), "'tokensPerMinite' not allowed"),
    (("quotas.tenants.-acme.maxInFlight=1",), "'-acme' does not match pattern"),
    (("quotas.tenants.a/b.maxInFlight=1",), "'a/b' does not match pattern"),
    # Budget pools: a refill rate > 0 and an integer burst >= 1 are required, nothing else is known.
    (
        ("quotas.default.pools.chat.samplesPerSecond=2", "quotas.default.pools.chat.burst=0"),
        "/quotas/default/pools/chat/burst",
    ),
    (
        ("quotas.default.pools.chat.samplesPerSecond=0", "quotas.default.pools.chat.burst=10"),
        "/quotas/default/pools/chat/samplesPerSecond",
    ),
    (("quotas.default.pools.chat.burst=10",), "missing property 'samplesPerSecond'"),
    (
        ("quotas.tenants.acme.pools.chat.samplesPerSecond=2", "quotas.tenants.acme.pools.chat.burst=60.5"),
        "/quotas/tenants/acme/pools/chat/burst",
    ),
    (
        (
            "quotas.tenants.acme.pools.chat.samplesPerSecond=2",
            "quotas.tenants.acme.pools.chat.burst=60",
            "quotas.tenants.acme.pools.chat.maxWait=1",
        ),
        "'maxWait' not allowed",
    ),
    (
        (
            "quotas.default.pools.chat.samplesPerSecond=2",
            "quotas.default.pools.chat.burst=60",
            "quotas.default.pools.chat.maxWaitS=-1",
        ),
        "/quotas/default/pools/chat/maxWaitS",
    ),
    (
        ("quotas.default.pools.a/b.samplesPerSecond=2", "quotas.default.pools.a/b.burst=60"),
        "'a/b' does not match pattern '^[A-Za-z0-9._-]{1,64}$'",
    ),
    (("networkPolicy.egress.otlp.ports[0]=otlp",), "/networkPolicy/egress/otlp/ports/0"),
    (("networkPolicy.ingress.namespaces[0]=Apps_1",), "/networkPolicy/ingress/namespaces/0"),
    (("networkPolicy.ingress.podLabels.role=true",), "/networkPolicy/ingress/podLabels/role"),
    # Operations: load spreading, routes, alerts, the dashboard, digests, the preStop pause.
    (("controller.config.grpcMaxConnectionAgeSeconds=-5",), "/controller/config/grpcMaxConnectionAgeSeconds"),
    (
        ("controller.config.grpcMaxConnectionAgeGraceSeconds=soon",),
        "/controller/config/grpcMaxConnectionAgeGraceSeconds",
    ),
    (("controller.config.grpcKeepaliveTimeSeconds=0",), "/controller/config/grpcKeepaliveTimeSeconds"),
    (("controller.config.grpcKeepaliveTimeoutSeconds=-1",), "/controller/config/grpcKeepaliveTimeoutSeconds"),
    (("controller.config.grpcKeepalivePermitWithoutCalls=yes",), "/controller/config/grpcKeepalivePermitWithoutCalls"),
    (("controller.config.grpcMinPingIntervalSeconds=0",), "/controller/config/grpcMinPingIntervalSeconds"),
    (("controller.httpPort=70000",), "/controller/httpPort"),
    (("controller.preStopSleepSeconds=-1",), "/controller/preStopSleepSeconds"),
    (("controller.image.digest=latest",), "/controller/image/digest"),
    (("triton.image.digest=sha256:abc",), "/triton/image/digest"),
    (("redis.bundled.image.digest=md5:0",), "/redis/bundled/image/digest"),
    (("controller.extraEnv[0].value=x",), "/controller/extraEnv/0"),
    (("service.headless.enabled=sometimes",), "/service/headless/enabled"),
    (("gateway.grpcRoute.enabled=true",), "/gateway/grpcRoute/parentRefs"),
    (("gateway.httpRoute.enabled=true", "gateway.httpRoute.parentRefs[0].name=gw"), "/controller/httpPort"),
    (("controller.httpPort=8080", "gateway.httpRoute.enabled=true"), "/gateway/httpRoute/parentRefs"),
    (("gateway.httpRoute.pathPrefix=v1",), "/gateway/httpRoute/pathPrefix"),
    (("gateway.grpcRoute.hostnames={Certa_Example}",), "/gateway/grpcRoute/hostnames/0"),
    (("prometheusRule.errorRate.threshold=5",), "/prometheusRule/errorRate/threshold"),
    (("prometheusRule.latencyP99.for=soon",), "/prometheusRule/latencyP99/for"),
    (("prometheusRule.leaseTakeovers.window=15",), "/prometheusRule/leaseTakeovers/window"),
    (("prometheusRule.redisUnavailable.severity=",), "/prometheusRule/redisUnavailable/severity"),
    (("prometheusRule.budgetPoolExhausted.threshold=-1",), "/prometheusRule/budgetPoolExhausted/threshold"),
    (("grafana.dashboard.namespace=Monitoring",), "/grafana/dashboard/namespace"),
    (("grafana.dashboard.labels.grafana_dashboard=1",), "/grafana/dashboard/labels/grafana_dashboard"),
]


@pytest.mark.parametrize(("sets", "named"), SCHEMA_CASES, ids=[case[1] for case in SCHEMA_CASES])
def test_schema_rejects(sets: tuple[str, ...], named: str) -> None:
    message = render_error(*sets)
    assert "don't meet the specifications of the schema" in message
    assert named in message


TEMPLATE_CASES = [
    (("autoscaling.enabled=true", "keda.enabled=true"), "autoscaling.enabled and keda.enabled are mutually exclusive"),
    (("controller.replicaCount=0",), "controller.replicaCount must be at least 1"),
    (("triton.enabled=false",), "triton.externalUrl is required when triton.enabled is false"),
    (("redis.bundled.enabled=false",), "no Redis configured"),
    (
        ("redis.external.url=redis://redis.data.svc:6379/0",),
        "redis.bundled.enabled and redis.external.url are mutually exclusive",
    ),
    (
        ("redis.external.tls.enabled=true",),
        "redis.external.existingSecret, .username, .cluster and .tls.enabled apply only to an external Redis",
    ),
    (
        (
            "redis.bundled.enabled=false",
            "redis.external.url=redis://redis:6379/0",
            "redis.external.tls.enabled=true",
            "redis.external.tls.existingSecret=ca",
        ),
        'redis.external.tls.enabled needs a rediss:// redis.external.url, got "redis://redis:6379/0"',
    ),
    (
        ("redis.bundled.enabled=false", "redis.external.url=rediss://redis:6380/0", "redis.external.tls.enabled=true"),
        "redis.external.tls.enabled needs redis.external.tls.existingSecret",
    ),
    (
        ("redis.bundled.enabled=false", "redis.external.url=rediss://redis:6380/0", "redis.external.tls.keyKey=k"),
        "redis.external.tls.certKey and redis.external.tls.keyKey go together",
    ),
    (
        ("redis.bundled.enabled=false", "redis.external.url=unix:///run/redis.sock", "redis.external.cluster=true"),
        "redis.external.cluster needs a TCP redis:// or rediss:// redis.external.url",
    ),
]


TEMPLATE_CASES += [
    (("tls.clientAuth=true",), "tls.clientAuth and tls.certManager.enabled need tls.enabled=true"),
    (
        ("tls.certManager.enabled=true", "tls.certManager.issuerRef.name=ca"),
        "tls.clientAuth and tls.certManager.enabled need tls.enabled=true",
    ),
    (("tls.enabled=true",), "tls.enabled needs the server certificate: set tls.existingSecret"),
    (
        (
            "tls.enabled=true",
            "tls.existingSecret=x",
            "tls.certManager.enabled=true",
            "tls.certManager.issuerRef.name=c",
        ),
        "tls.existingSecret and tls.certManager.enabled are mutually exclusive",
    ),
    (
        ("tls.enabled=true", "tls.certManager.enabled=true"),
        "tls.certManager.enabled needs tls.certManager.issuerRef.name",
    ),
    (
        ("tls.enabled=true", "tls.existingSecret=x", "tls.clientCaSecret=ca"),
        "tls.clientCaSecret is the CA of client certificates: it needs tls.clientAuth=true",
    ),
    (("auth.clientCert=true",), "auth.clientCert needs mutual TLS: set tls.enabled=true and tls.clientAuth=true"),
    (
        ("auth.jwt.jwks.existingSecret=j",),
        "JWT authentication (auth.jwt.jwks) needs auth.jwt.issuer and auth.jwt.audience",
    ),
    (
        (
            "auth.jwt.jwks.existingSecret=j",
            "auth.jwt.jwks.existingConfigMap=j",
            "auth.jwt.issuer=i",
            "auth.jwt.audience=a",
        ),
        "auth.jwt.jwks.existingSecret and auth.jwt.jwks.existingConfigMap are mutually exclusive",
    ),
    (("auth.jwt.audience=certa",), "auth.jwt.issuer and auth.jwt.audience need a JWKS to verify tokens"),
    (("auth.disabled=true",), "auth.disabled turns authentication off: it excludes auth.apiKeys"),
    (("quotas.tenants.-acme.maxInFlight=1",), 'quotas.tenants: "-acme" is not a tenant name'),
    (
        ("gateway.grpcRoute.enabled=true",),
        "gateway.grpcRoute.enabled needs gateway.grpcRoute.parentRefs",
    ),
    (
        ("gateway.httpRoute.enabled=true", "gateway.httpRoute.parentRefs[0].name=gw"),
        "gateway.httpRoute.enabled needs controller.httpPort",
    ),
    (
        ("controller.httpPort=8080", "gateway.httpRoute.enabled=true"),
        "gateway.httpRoute.enabled needs gateway.httpRoute.parentRefs",
    ),
]


@pytest.mark.parametrize(("sets", "message"), TEMPLATE_CASES, ids=[case[1][:40] for case in TEMPLATE_CASES])
def test_templates_reject_without_the_schema(sets: tuple[str, ...], message: str) -> None:
    assert message in render_error(*sets, extra=("--skip-schema-validation",))


CROSS_FIELD_CASES = [
    (
        ("controller.terminationGracePeriodSeconds=75",),
        "controller.terminationGracePeriodSeconds (75) must exceed controller.preStopSleepSeconds (10) + "
        "controller.config.drainTimeoutSeconds (60) + 5",
    ),
    (("controller.config.drainTimeoutSeconds=120",), "controller.config.drainTimeoutSeconds (120)"),
    (
        ("controller.preStopSleepSeconds=0", "controller.terminationGracePeriodSeconds=65"),
        "controller.terminationGracePeriodSeconds (65) must exceed controller.preStopSleepSeconds (0)",
    ),
    (
        ("controller.config.grpcMaxConnectionAgeGraceSeconds=600",),
        "controller.config.grpcMaxConnectionAgeGraceSeconds (600) must be >= controller.config.maxDeadlineSeconds "
        "(3600)",
    ),
    (("controller.httpPort=50051",), "controller.httpPort (50051) must differ from controller.port"),
    (("controller.httpPort=9464",), "controller.httpPort (9464) must differ from metrics.port"),
    (
        ("controller.httpPort=8086", "tls.enabled=true", "tls.existingSecret=certa-tls"),
        "controller.httpPort (8086) must differ from controller.healthPort",
    ),
    (
        ("controller.httpPort=8080", "gateway.httpRoute.enabled=true", "gateway.httpRoute.parentRefs[0].name=gw"),
        "gateway.grpcRoute.enabled / gateway.httpRoute.enabled need the Gateway API: the cluster does not serve "
        "gateway.networking.k8s.io/v1",
    ),
    (
        ("gateway.grpcRoute.enabled=true", "gateway.grpcRoute.parentRefs[0].name=gw"),
        "gateway.grpcRoute.enabled / gateway.httpRoute.enabled need the Gateway API",
    ),
    (
        ("prometheusRule.enabled=true",),
        "prometheusRule.enabled needs the Prometheus Operator: the cluster does not serve monitoring.coreos.com/v1",
    ),
    (
        ("controller.config.defaultTokenBudget=5000", "controller.config.maxTokenBudget=4000"),
        "controller.config.defaultTokenBudget (5000) must be <= controller.config.maxTokenBudget (4000)",
    ),
    (
        ("controller.config.defaultDeadlineSeconds=100", "controller.config.maxDeadlineSeconds=50"),
        "controller.config.defaultDeadlineSeconds (100) must be <= controller.config.maxDeadlineSeconds (50)",
    ),
    (("controller.config.defaultBackend=nope",), 'controller.config.defaultBackend "nope" is not one of'),
    (
        ("controller.config.extraBackends[0].name=trtllm", "controller.config.extraBackends[0].url=triton://x:1"),
        "controller.config.extraBackends: backend names must be unique",
    ),
    (
        ("autoscaling.enabled=true", "autoscaling.minReplicas=5", "autoscaling.maxReplicas=3"),
        "autoscaling.maxReplicas must be >= autoscaling.minReplicas",
    ),
    (
        ("keda.enabled=true", "keda.minReplicaCount=5", "keda.maxReplicaCount=3"),
        "keda.maxReplicaCount must be >= keda.minReplicaCount",
    ),
    (
        ("triton.autoscaling.enabled=true", "triton.autoscaling.minReplicas=3", "triton.autoscaling.maxReplicas=2"),
        "triton.autoscaling.maxReplicas must be >= triton.autoscaling.minReplicas",
    ),
    (
        ("controller.config.stateTtlSeconds=7200", "controller.config.resultTtlSeconds=3600"),
        "controller.config.resultTtlSeconds (3600) must be >= controller.config.stateTtlSeconds (7200)",
    ),
    (
        ("controller.config.stateTtlSeconds=5",),
        "controller.config.stateTtlSeconds (5) must be >= controller.config.leaseSeconds (10)",
    ),
    (
        (
            "redis.bundled.enabled=false",
            "redis.external.url=rediss://redis:6380/0",
            "redis.external.tls.enabled=true",
            "redis.external.tls.existingSecret=ca",
            "redis.external.tls.caKey=",
        ),
        "redis.external.tls.enabled needs redis.external.tls.caKey or redis.external.tls.certKey",
    ),
]


@pytest.mark.parametrize(("sets", "message"), CROSS_FIELD_CASES, ids=[case[1][:40] for case in CROSS_FIELD_CASES])
def test_templates_reject_inconsistent_values(sets: tuple[str, ...], message: str) -> None:
    assert message in render_error(*sets)
