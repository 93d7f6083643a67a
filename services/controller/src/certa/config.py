"""Server configuration, read once from environment variables prefixed `CERTA_`.

Every Helm value of the controller maps to one of these variables (see charts/certa/values.yaml).
Per-request knobs arrive in the request and are clamped by the caps below.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from certa.core.errors import InvalidArgument
from certa.exit_profiles import profile_book

PREFIX = "CERTA_"


@dataclass(frozen=True)
class BackendSpec:
    """One configured backend: a name clients use and the URL of the server behind it.

    URL schemes: `triton://host:port` (gRPC, TensorRT-LLM contract), `triton+tls://host:port`,
    `openai+http://host:port/v1` and `openai+https://host/v1` (OpenAI-compatible completions).
    Query parameters are adapter options, e.g. `?mode=tokens&model=ensemble`.
    """

    name: str
    url: str

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme


@dataclass(frozen=True)
class StoreSettings:
    """Where requests' state lives (`certa.store`): Redis, or (explicitly, one process only) memory."""

    kind: str = "redis"  # CERTA_STORE: redis | memory
    redis_url: str = ""
    redis_username: str = ""
    redis_password: str = field(default="", repr=False)  # from CERTA_REDIS_PASSWORD or CERTA_REDIS_PASSWORD_FILE
    redis_tls_ca_file: str = ""
    redis_tls_cert_file: str = ""
    redis_tls_key_file: str = ""
    redis_cluster: bool = False
    redis_timeout_s: float = 2.0
    redis_pool_size: int = 64
    key_prefix: str = "certa"
    state_ttl_s: float = 3600.0
    result_ttl_s: float = 86400.0
    lease_s: float = 10.0
    sweep_interval_s: float = 5.0
    replica_id: str = ""


@dataclass(frozen=True)
class AuthSettings:
    """How callers prove their tenant (`certa.api.auth`); at least one way, or `disabled` for local development."""

    disabled: bool = False
    api_keys_file: str = ""
    jwks_file: str = ""
    jwks_url: str = ""
    jwks_refresh_s: float = 300.0
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_tenant_claim: str = "tenant"
    client_cert: bool = False

    @property
    def configured(self) -> bool:
        return self.disabled or bool(self.api_keys_file or self.jwks_file or self.jwks_url or self.client_cert)


@dataclass(frozen=True)
class TlsSettings:
    """The gRPC server's TLS: certificate and key; with a client CA, clients must present a certificate (mTLS)."""

    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.cert_file)


@dataclass(frozen=True)
class GrpcSettings:
    """HTTP/2 connection management of the gRPC server (`CERTA_GRPC_*`), applied as gRPC server options.

    A client keeps its HTTP/2 connection for as long as it can, so behind a Kubernetes Service (connection-level
    balancing) pods added later would get no calls from clients already connected. `max_connection_age_s` makes the
    server send GOAWAY after that age (gRPC adds +/-10 % jitter): the client reconnects (and re-resolves a `dns:///`
    target), reaching the new pods. Calls running on the old connection may go on for `max_connection_age_grace_s`;
    None (the default) means `Settings.max_deadline_s`, so that no call the API allows is cut.
    """

    max_connection_age_s: float = 300.0  # 0: connections never age out
    max_connection_age_grace_s: float | None = None
    # The server pings an idle client after keepalive_time_s and drops the connection when no answer comes within
    # keepalive_timeout_s (a vanished client or a silently broken network path).
    keepalive_time_s: float = 60.0
    keepalive_timeout_s: float = 20.0
    # Whether clients may send keepalive pings while they have no call running (and the server pings such clients);
    # refused pings make the server close the connection with GOAWAY "too_many_pings".
    keepalive_permit_without_calls: bool = True
    # The shortest interval between a client's pings the server accepts (clients' keepalive time must not be lower).
    min_ping_interval_s: float = 10.0


@dataclass(frozen=True)
class HttpModel:
    """A model the OpenAI-compatible endpoint offers (`GET /v1/models`): which backend and backend model serve it,
    the strategy a request gets when it names none (a `certa.v1.Strategy` in its JSON form, checked at start), and
    the largest `max_tokens` it accepts."""

    name: str
    backend: str
    model: str = ""  # the backend's model; "" is the backend's default
    strategy_json: str = '{"dynasor_cot": {}}'  # Dynasor-CoT, preset auto (calibrated exits)
    context_tokens: int = 0  # 0: the server's CERTA_MAX_TOKEN_BUDGET


@dataclass(frozen=True)
class Settings:
    listen_address: str = "0.0.0.0:50051"
    # The OpenAI-compatible HTTP endpoint (certa.api.http): host:port, "" for none (CERTA_HTTP_PORT=0).
    http_listen_address: str = ""
    # Its models (CERTA_HTTP_MODELS); none configured: one per backend, named after it, with the default strategy.
    http_models: tuple[HttpModel, ...] = ()
    # A plaintext port serving only grpc.health.v1 (for kubelet probes when the main port uses TLS); "" for none.
    health_listen_address: str = ""
    backends: tuple[BackendSpec, ...] = ()
    default_backend: str = ""
    default_token_budget: int = 2048
    max_token_budget: int = 32768
    default_deadline_s: float = 600.0
    max_deadline_s: float = 3600.0
    max_prompt_chars: int = 32768
    max_samples: int = 64
    max_batch_questions: int = 1000
    # `auto`: the template the backend publishes for its model, else ChatML; `chatml`; `raw` (no template);
    # or a path to a Jinja2 chat-template file.
    prompt_template: str = "auto"
    instruction: str = "Please reason step by step, and put your final answer within \\boxed{}."
    # Refinement prompt of integrated parallel–sequential sampling (string.Template with $question, $attempts);
    # "" is the built-in one (certa/prompts/refine.txt).
    refinement_template: str = ""
    backend_connect_timeout_s: float = 10.0
    # Models a request may name, per backend (CERTA_BACKEND_MODELS=NAME=MODEL|MODEL,...). A backend not listed
    # accepts the models its server serves (Triton's repository index, an OpenAI server's /v1/models).
    backend_models: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Backend calls each backend runs at once on this replica, shared between tenants by weight (certa.runtime.
    # fair_queue); 0: no limit and no queue.
    backend_max_concurrent_calls: int = 0
    drain_timeout_s: float = 60.0
    max_concurrent_requests: int = 256
    log_level: str = "INFO"
    log_format: str = "json"
    # Port of the Prometheus `/metrics` endpoint; 0 serves none. Traces and OTLP metrics follow the standard
    # `OTEL_*` variables (see certa.observability.telemetry).
    metrics_port: int = 0
    store: StoreSettings = field(default_factory=StoreSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    grpc: GrpcSettings = field(default_factory=GrpcSettings)
    # Per-tenant limits and privacy (certa.tenants); "" means unlimited, nothing logged.
    tenants_file: str = ""
    exit_profiles: str = ""  # CERTA_EXIT_PROFILES: a profile file or a directory of them (certa.exit_profiles)
    exit_profile: str = ""  # CERTA_EXIT_PROFILE: the profile used when a request names none

    @property
    def default_backend_name(self) -> str:
        return self.default_backend or (self.backends[0].name if self.backends else "")

    @property
    def offered_models(self) -> tuple[HttpModel, ...]:
        """The OpenAI-compatible endpoint's models: the configured ones, else one per backend."""
        return self.http_models or tuple(HttpModel(name=spec.name, backend=spec.name) for spec in self.backends)

    @property
    def http_max_body_bytes(self) -> int:
        """The largest request body the HTTP endpoint reads: room for a prompt of CERTA_MAX_PROMPT_CHARS characters
        even fully JSON-escaped (6 bytes each), plus the other fields."""
        return 6 * self.max_prompt_chars + 65536


def _parse_backends(raw: str) -> tuple[BackendSpec, ...]:
    specs = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, url = item.partition("=")
        if not sep or not name or not url:
            raise InvalidArgument(
                f"{PREFIX}BACKENDS", f"entry {item!r} must be NAME=URL, e.g. local=triton://127.0.0.1:8001"
            )
        specs.append(BackendSpec(name=name.strip(), url=url.strip()))
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise InvalidArgument(f"{PREFIX}BACKENDS", f"backend names must be unique, got {names}")
    return tuple(specs)


def _parse_backend_models(raw: str, backends: tuple[BackendSpec, ...]) -> dict[str, frozenset[str]]:
    variable = f"{PREFIX}BACKEND_MODELS"
    names = {spec.name for spec in backends}
    allowed: dict[str, frozenset[str]] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, models = item.partition("=")
        listed = frozenset(filter(None, (model.strip() for model in models.split("|"))))
        if not sep or not listed:
            raise InvalidArgument(variable, f"entry {item!r} must be BACKEND=MODEL|MODEL, e.g. local=ensemble")
        if name.strip() not in names:
            raise InvalidArgument(variable, f"{name.strip()!r} is not one of {PREFIX}BACKENDS")
        allowed[name.strip()] = listed
    return allowed


def _http_listen_address(env: Mapping[str, str], grpc_address: str) -> str:
    """CERTA_HTTP_PORT on the host the gRPC server listens on; 0 (the default) serves no HTTP endpoint."""
    port = int(_number(env, "HTTP_PORT", 0, int, 0))
    if port > 65535:
        raise InvalidArgument(f"{PREFIX}HTTP_PORT", f"must be 0 (none) or a port, got {port}")
    host = grpc_address.rpartition(":")[0] or "0.0.0.0"
    return f"{host}:{port}" if port else ""


_HTTP_MODEL_KEYS = {"backend", "model", "strategy", "context_tokens"}


def _http_models(raw: str, backends: tuple[BackendSpec, ...]) -> tuple[HttpModel, ...]:
    """CERTA_HTTP_MODELS: a JSON object (or the path of a file holding one) of model name -> {backend, model,
    strategy, context_tokens}; e.g. {"qwen-early-exit": {"backend": "local", "strategy": {"dynasor_cot": {}}}}."""
    variable = f"{PREFIX}HTTP_MODELS"
    if not raw.strip():
        return ()
    if not raw.lstrip().startswith("{"):
        try:
            raw = Path(raw).read_text()
        except OSError as error:
            raise InvalidArgument(variable, f"cannot read {raw!r}: {error.strerror}") from None
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        raise InvalidArgument(variable, f"is not valid JSON: {error}") from None
    if not isinstance(document, dict) or not document:
        raise InvalidArgument(variable, "must be a non-empty JSON object of model name -> settings")
    names = {spec.name for spec in backends}
    models = []
    for name, entry in document.items():
        field_name = f"{variable}[{name!r}]"
        if not isinstance(entry, dict) or set(entry) - _HTTP_MODEL_KEYS:
            raise InvalidArgument(field_name, f"must be an object with keys among {sorted(_HTTP_MODEL_KEYS)}")
        backend = entry.get("backend")
        if backend not in names:
            raise InvalidArgument(f"{field_name}.backend", f"{backend!r} is not one of {PREFIX}BACKENDS")
        context = entry.get("context_tokens", 0)
        if not isinstance(context, int) or context < 0:
            raise InvalidArgument(f"{field_name}.context_tokens", f"must be an integer >= 0, got {context!r}")
        strategy = entry.get("strategy", {"dynasor_cot": {}})
        if not isinstance(strategy, dict):
            raise InvalidArgument(f"{field_name}.strategy", "must be a certa.v1.Strategy as JSON")
        models.append(
            HttpModel(
                name=name,
                backend=backend,
                model=str(entry.get("model", "")),
                strategy_json=json.dumps(strategy),
                context_tokens=context,
            )
        )
    return tuple(models)


def _number(env: Mapping[str, str], key: str, default: float, kind: type, minimum: float) -> float:
    raw = env.get(PREFIX + key)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise InvalidArgument(PREFIX + key, f"must be a {kind.__name__}, got {raw!r}") from None
    if value < minimum:
        raise InvalidArgument(PREFIX + key, f"must be >= {minimum}, got {value}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from the environment; an invalid value raises InvalidArgument naming the variable."""
    env = os.environ if env is None else env
    base = Settings()
    backends = _parse_backends(env.get(PREFIX + "BACKENDS", ""))
    default_backend = env.get(PREFIX + "DEFAULT_BACKEND", "")
    if default_backend and default_backend not in {spec.name for spec in backends}:
        raise InvalidArgument(f"{PREFIX}DEFAULT_BACKEND", f"{default_backend!r} is not one of {PREFIX}BACKENDS")
    settings = Settings(
        listen_address=env.get(PREFIX + "LISTEN_ADDRESS", base.listen_address),
        http_listen_address=_http_listen_address(env, env.get(PREFIX + "LISTEN_ADDRESS", base.listen_address)),
        http_models=_http_models(env.get(PREFIX + "HTTP_MODELS", ""), backends),
        health_listen_address=env.get(PREFIX + "HEALTH_LISTEN_ADDRESS", ""),
        backends=backends,
        default_backend=default_backend,
        default_token_budget=int(_number(env, "DEFAULT_TOKEN_BUDGET", base.default_token_budget, int, 1)),
        max_token_budget=int(_number(env, "MAX_TOKEN_BUDGET", base.max_token_budget, int, 1)),
        default_deadline_s=_number(env, "DEFAULT_DEADLINE_S", base.default_deadline_s, float, 0.001),
        max_deadline_s=_number(env, "MAX_DEADLINE_S", base.max_deadline_s, float, 0.001),
        max_prompt_chars=int(_number(env, "MAX_PROMPT_CHARS", base.max_prompt_chars, int, 1)),
        max_samples=int(_number(env, "MAX_SAMPLES", base.max_samples, int, 1)),
        max_batch_questions=int(_number(env, "MAX_BATCH_QUESTIONS", base.max_batch_questions, int, 1)),
        prompt_template=env.get(PREFIX + "PROMPT_TEMPLATE", base.prompt_template),
        instruction=env.get(PREFIX + "INSTRUCTION", base.instruction),
        refinement_template=_existing_file(env, "REFINEMENT_TEMPLATE"),
        backend_connect_timeout_s=_number(
            env, "BACKEND_CONNECT_TIMEOUT_S", base.backend_connect_timeout_s, float, 0.001
        ),
        backend_models=_parse_backend_models(env.get(PREFIX + "BACKEND_MODELS", ""), backends),
        backend_max_concurrent_calls=int(_number(env, "BACKEND_MAX_CONCURRENT_CALLS", 0, int, 0)),
        drain_timeout_s=_number(env, "DRAIN_TIMEOUT_S", base.drain_timeout_s, float, 0.0),
        max_concurrent_requests=int(_number(env, "MAX_CONCURRENT_REQUESTS", base.max_concurrent_requests, int, 1)),
        log_level=env.get(PREFIX + "LOG_LEVEL", base.log_level).upper(),
        log_format=env.get(PREFIX + "LOG_FORMAT", base.log_format),
        metrics_port=int(_number(env, "METRICS_PORT", base.metrics_port, int, 0)),
        store=_store_settings(env),
        auth=_auth_settings(env),
        tls=_tls_settings(env),
        grpc=_grpc_settings(env),
        tenants_file=_existing_file(env, "TENANTS_FILE"),
        exit_profiles=_existing_path(env, "EXIT_PROFILES"),
        exit_profile=env.get(PREFIX + "EXIT_PROFILE", ""),
    )
    profile_book(settings.exit_profiles, settings.exit_profile)  # a bad profile file or name fails at start
    if settings.default_token_budget > settings.max_token_budget:
        raise InvalidArgument(
            f"{PREFIX}DEFAULT_TOKEN_BUDGET", f"must be <= {PREFIX}MAX_TOKEN_BUDGET ({settings.max_token_budget})"
        )
    if settings.default_deadline_s > settings.max_deadline_s:
        raise InvalidArgument(
            f"{PREFIX}DEFAULT_DEADLINE_S", f"must be <= {PREFIX}MAX_DEADLINE_S ({settings.max_deadline_s})"
        )
    grace_s = settings.grpc.max_connection_age_grace_s
    if grace_s is not None and grace_s < settings.max_deadline_s:
        raise InvalidArgument(
            f"{PREFIX}GRPC_MAX_CONNECTION_AGE_GRACE_S",
            f"must be >= {PREFIX}MAX_DEADLINE_S ({settings.max_deadline_s:g}), got {grace_s:g}: a call allowed to run "
            "that long would be cut when its connection reaches its age (leave it empty to follow "
            "CERTA_MAX_DEADLINE_S)",
        )
    if settings.metrics_port > 65535:
        raise InvalidArgument(f"{PREFIX}METRICS_PORT", f"must be 0 (none) or a port, got {settings.metrics_port}")
    if settings.log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise InvalidArgument(
            f"{PREFIX}LOG_LEVEL", f"must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {settings.log_level!r}"
        )
    if settings.log_format not in ("json", "text"):
        raise InvalidArgument(f"{PREFIX}LOG_FORMAT", f"must be json or text, got {settings.log_format!r}")
    return settings


def default_replica_id() -> str:
    """The name leases carry when CERTA_REPLICA_ID is not set: host and process."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _flag(env: Mapping[str, str], key: str, default: bool = False) -> bool:
    raw = env.get(PREFIX + key, "").strip().lower()
    if raw == "":
        return default
    if raw in ("false", "0", "no"):
        return False
    if raw in ("true", "1", "yes"):
        return True
    raise InvalidArgument(PREFIX + key, f"must be true or false, got {raw!r}")


def _secret(env: Mapping[str, str], key: str) -> str:
    """A secret from `CERTA_<KEY>_FILE` (a mounted Secret; trailing newline dropped) or `CERTA_<KEY>`."""
    path = env.get(f"{PREFIX}{key}_FILE", "")
    if path:
        try:
            return Path(path).read_text().rstrip("\r\n")
        except OSError as error:
            raise InvalidArgument(f"{PREFIX}{key}_FILE", f"cannot read {path!r}: {error.strerror}") from None
    return env.get(PREFIX + key, "")


def _store_settings(env: Mapping[str, str]) -> StoreSettings:
    base = StoreSettings()
    kind = env.get(PREFIX + "STORE", base.kind).strip().lower()
    if kind not in ("redis", "memory"):
        raise InvalidArgument(f"{PREFIX}STORE", f"must be redis or memory, got {kind!r}")
    url = env.get(PREFIX + "REDIS_URL", "").strip()
    if kind == "redis" and not url:
        raise InvalidArgument(
            f"{PREFIX}REDIS_URL",
            "is required with CERTA_STORE=redis (e.g. redis://127.0.0.1:6379/0); CERTA_STORE=memory runs a single "
            "process without shared state",
        )
    scheme = urlsplit(url).scheme
    if url and scheme not in ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel"):
        raise InvalidArgument(
            f"{PREFIX}REDIS_URL",
            f"must start with redis://, rediss://, unix:// or redis+sentinel://, got {url!r}",
        )
    if scheme.endswith("+sentinel") and not urlsplit(url).path.strip("/"):
        raise InvalidArgument(f"{PREFIX}REDIS_URL", "a Sentinel URL names the master: redis+sentinel://HOSTS/SERVICE")
    settings = StoreSettings(
        kind=kind,
        redis_url=url,
        redis_username=env.get(PREFIX + "REDIS_USERNAME", ""),
        redis_password=_secret(env, "REDIS_PASSWORD"),
        redis_tls_ca_file=_existing_file(env, "REDIS_TLS_CA_FILE"),
        redis_tls_cert_file=_existing_file(env, "REDIS_TLS_CERT_FILE"),
        redis_tls_key_file=_existing_file(env, "REDIS_TLS_KEY_FILE"),
        redis_cluster=_flag(env, "REDIS_CLUSTER"),
        redis_timeout_s=_number(env, "REDIS_TIMEOUT_S", base.redis_timeout_s, float, 0.001),
        redis_pool_size=int(_number(env, "REDIS_POOL_SIZE", base.redis_pool_size, int, 1)),
        key_prefix=env.get(PREFIX + "REDIS_KEY_PREFIX", base.key_prefix),
        state_ttl_s=_number(env, "STATE_TTL_S", base.state_ttl_s, float, 1.0),
        result_ttl_s=_number(env, "RESULT_TTL_S", base.result_ttl_s, float, 1.0),
        lease_s=_number(env, "LEASE_S", base.lease_s, float, 0.1),
        sweep_interval_s=_number(env, "SWEEP_INTERVAL_S", base.sweep_interval_s, float, 0.01),
        replica_id=env.get(PREFIX + "REPLICA_ID", "") or default_replica_id(),
    )
    if settings.result_ttl_s < settings.state_ttl_s:
        raise InvalidArgument(f"{PREFIX}RESULT_TTL_S", f"must be >= {PREFIX}STATE_TTL_S ({settings.state_ttl_s:g})")
    if settings.state_ttl_s < settings.lease_s:
        raise InvalidArgument(f"{PREFIX}STATE_TTL_S", f"must be >= {PREFIX}LEASE_S ({settings.lease_s:g})")
    if not settings.key_prefix or any(c in settings.key_prefix for c in "{}"):
        raise InvalidArgument(f"{PREFIX}REDIS_KEY_PREFIX", "must be non-empty and free of { and }")
    return settings


def _existing_path(env: Mapping[str, str], key: str) -> str:
    path = env.get(PREFIX + key, "")
    if path and not Path(path).exists():
        raise InvalidArgument(PREFIX + key, f"no such file or directory: {path}")
    return path


def _existing_file(env: Mapping[str, str], key: str) -> str:
    path = env.get(PREFIX + key, "")
    if path and not Path(path).is_file():
        raise InvalidArgument(PREFIX + key, f"{path!r} is not a readable file")
    return path


def _jwks_refresh_s(env: Mapping[str, str]) -> float:
    key = PREFIX + "AUTH_JWKS_REFRESH_S"
    raw = env.get(key, "300")
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgument(key, f"must be a number of seconds in [1, 86400], got {raw!r}") from None
    if not 1 <= value <= 86400:
        raise InvalidArgument(key, f"must be a number of seconds in [1, 86400], got {raw!r}")
    return value


def _auth_settings(env: Mapping[str, str]) -> AuthSettings:
    settings = AuthSettings(
        disabled=_flag(env, "AUTH_DISABLED"),
        api_keys_file=_existing_file(env, "AUTH_API_KEYS_FILE"),
        jwks_file=_existing_file(env, "AUTH_JWKS_FILE"),
        jwks_url=env.get(PREFIX + "AUTH_JWKS_URL", "").strip(),
        jwks_refresh_s=_jwks_refresh_s(env),
        jwt_issuer=env.get(PREFIX + "AUTH_JWT_ISSUER", ""),
        jwt_audience=env.get(PREFIX + "AUTH_JWT_AUDIENCE", ""),
        jwt_tenant_claim=env.get(PREFIX + "AUTH_JWT_TENANT_CLAIM", "tenant"),
        client_cert=_flag(env, "AUTH_CLIENT_CERT"),
    )
    if not settings.configured:
        raise InvalidArgument(
            f"{PREFIX}AUTH_API_KEYS_FILE",
            "no authentication configured: set CERTA_AUTH_API_KEYS_FILE, CERTA_AUTH_JWKS_FILE, CERTA_AUTH_JWKS_URL or "
            "CERTA_AUTH_CLIENT_CERT=true (or CERTA_AUTH_DISABLED=true for local development)",
        )
    if settings.jwks_file and settings.jwks_url:
        raise InvalidArgument(f"{PREFIX}AUTH_JWKS_URL", "set CERTA_AUTH_JWKS_URL or CERTA_AUTH_JWKS_FILE, not both")
    if settings.jwks_url and urlsplit(settings.jwks_url).scheme not in ("https", "http"):
        raise InvalidArgument(
            f"{PREFIX}AUTH_JWKS_URL", f"must be an https:// (or http://) URL, got {settings.jwks_url!r}"
        )
    if (settings.jwks_file or settings.jwks_url) and not (settings.jwt_issuer and settings.jwt_audience):
        raise InvalidArgument(
            f"{PREFIX}AUTH_JWT_ISSUER", "JWT verification needs both CERTA_AUTH_JWT_ISSUER and CERTA_AUTH_JWT_AUDIENCE"
        )
    if settings.client_cert and not env.get(PREFIX + "TLS_CLIENT_CA_FILE"):
        raise InvalidArgument(
            f"{PREFIX}AUTH_CLIENT_CERT", "client certificates need mutual TLS: set CERTA_TLS_CLIENT_CA_FILE"
        )
    return settings


def _tls_settings(env: Mapping[str, str]) -> TlsSettings:
    settings = TlsSettings(
        cert_file=_existing_file(env, "TLS_CERT_FILE"),
        key_file=_existing_file(env, "TLS_KEY_FILE"),
        client_ca_file=_existing_file(env, "TLS_CLIENT_CA_FILE"),
    )
    if bool(settings.cert_file) != bool(settings.key_file):
        raise InvalidArgument(f"{PREFIX}TLS_KEY_FILE", "TLS needs both CERTA_TLS_CERT_FILE and CERTA_TLS_KEY_FILE")
    if settings.client_ca_file and not settings.cert_file:
        raise InvalidArgument(
            f"{PREFIX}TLS_CLIENT_CA_FILE", "mutual TLS needs the server's TLS: set CERTA_TLS_CERT_FILE"
        )
    return settings


def _grpc_settings(env: Mapping[str, str]) -> GrpcSettings:
    base = GrpcSettings()
    grace_raw = env.get(PREFIX + "GRPC_MAX_CONNECTION_AGE_GRACE_S", "")
    return GrpcSettings(
        max_connection_age_s=_number(env, "GRPC_MAX_CONNECTION_AGE_S", base.max_connection_age_s, float, 0.0),
        max_connection_age_grace_s=_number(env, "GRPC_MAX_CONNECTION_AGE_GRACE_S", 0.0, float, 0.0)
        if grace_raw
        else None,
        keepalive_time_s=_number(env, "GRPC_KEEPALIVE_TIME_S", base.keepalive_time_s, float, 0.001),
        keepalive_timeout_s=_number(env, "GRPC_KEEPALIVE_TIMEOUT_S", base.keepalive_timeout_s, float, 0.001),
        keepalive_permit_without_calls=_flag(
            env, "GRPC_KEEPALIVE_PERMIT_WITHOUT_CALLS", base.keepalive_permit_without_calls
        ),
        min_ping_interval_s=_number(env, "GRPC_MIN_PING_INTERVAL_S", base.min_ping_interval_s, float, 0.001),
    )
