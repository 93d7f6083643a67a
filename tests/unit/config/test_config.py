"""Settings from CERTA_* variables: parsed once, and every bad value named."""

from __future__ import annotations

import pytest

from certa.config import BackendSpec, Settings, load_settings
from certa.core.errors import InvalidArgument

pytestmark = pytest.mark.unit


REDIS = {"CERTA_REDIS_URL": "redis://127.0.0.1:6379/0", "CERTA_AUTH_DISABLED": "true"}


def test_defaults_and_backends() -> None:
    settings = load_settings({"CERTA_BACKENDS": "a=triton://h:8001, b=openai+http://h:8000/v1", **REDIS})
    assert settings.backends == (BackendSpec("a", "triton://h:8001"), BackendSpec("b", "openai+http://h:8000/v1"))
    assert settings.default_backend_name == "a"
    assert settings.listen_address == Settings().listen_address


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CERTA_BACKENDS": "no-equals-sign"}, "CERTA_BACKENDS"),
        ({"CERTA_BACKENDS": "a=triton://x,a=triton://y"}, "CERTA_BACKENDS"),
        ({"CERTA_BACKENDS": "a=triton://x", "CERTA_DEFAULT_BACKEND": "b"}, "CERTA_DEFAULT_BACKEND"),
        ({"CERTA_MAX_TOKEN_BUDGET": "many"}, "CERTA_MAX_TOKEN_BUDGET"),
        ({"CERTA_MAX_SAMPLES": "0"}, "CERTA_MAX_SAMPLES"),
        ({"CERTA_DEFAULT_TOKEN_BUDGET": "9000", "CERTA_MAX_TOKEN_BUDGET": "100"}, "CERTA_DEFAULT_TOKEN_BUDGET"),
        ({"CERTA_LOG_LEVEL": "LOUD"}, "CERTA_LOG_LEVEL"),
        ({"CERTA_LOG_FORMAT": "xml"}, "CERTA_LOG_FORMAT"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        load_settings({**REDIS, **env})
    assert str(raised.value).startswith(variable)


def test_redis_is_the_default_store_and_must_be_configured() -> None:
    with pytest.raises(InvalidArgument, match="CERTA_REDIS_URL: is required with CERTA_STORE=redis"):
        load_settings({})
    assert load_settings({"CERTA_STORE": "memory", "CERTA_AUTH_DISABLED": "true"}).store.kind == "memory"
    store = load_settings(REDIS).store
    assert (store.kind, store.redis_url, store.lease_s) == ("redis", REDIS["CERTA_REDIS_URL"], 10.0)
    assert store.replica_id  # hostname-pid when CERTA_REPLICA_ID is not set


def test_redis_password_comes_from_a_file_without_its_newline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    store = load_settings({**REDIS, "CERTA_REDIS_PASSWORD_FILE": str(secret), "CERTA_REDIS_USERNAME": "certa"}).store
    assert (store.redis_username, store.redis_password) == ("certa", "s3cret")
    assert "s3cret" not in repr(store)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CERTA_STORE": "postgres"}, "CERTA_STORE"),
        ({"CERTA_REDIS_URL": "http://h:6379"}, "CERTA_REDIS_URL"),
        ({"CERTA_REDIS_PASSWORD_FILE": "/nonexistent/password"}, "CERTA_REDIS_PASSWORD_FILE"),
        ({"CERTA_REDIS_TLS_CA_FILE": "/nonexistent/ca.pem"}, "CERTA_REDIS_TLS_CA_FILE"),
        ({"CERTA_REDIS_CLUSTER": "maybe"}, "CERTA_REDIS_CLUSTER"),
        ({"CERTA_STATE_TTL_S": "100", "CERTA_RESULT_TTL_S": "10"}, "CERTA_RESULT_TTL_S"),
        ({"CERTA_LEASE_S": "30", "CERTA_STATE_TTL_S": "5", "CERTA_RESULT_TTL_S": "5"}, "CERTA_STATE_TTL_S"),
        ({"CERTA_REDIS_KEY_PREFIX": "a{b}"}, "CERTA_REDIS_KEY_PREFIX"),
        ({"CERTA_REDIS_POOL_SIZE": "0"}, "CERTA_REDIS_POOL_SIZE"),
        ({"CERTA_REDIS_URL": "redis+sentinel://h:26379"}, "CERTA_REDIS_URL"),
    ],
)
def test_bad_store_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        load_settings({**REDIS, **env})
    assert str(raised.value).startswith(variable)


def test_authentication_must_be_configured_or_explicitly_disabled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgument, match="no authentication configured"):
        load_settings({**REDIS, "CERTA_AUTH_DISABLED": "false"})
    keys = tmp_path / "keys.json"
    keys.write_text('{"keys": []}')
    auth = load_settings({**REDIS, "CERTA_AUTH_DISABLED": "", "CERTA_AUTH_API_KEYS_FILE": str(keys)}).auth
    assert auth.api_keys_file == str(keys) and not auth.disabled


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CERTA_AUTH_API_KEYS_FILE": "/nonexistent/keys.json"}, "CERTA_AUTH_API_KEYS_FILE"),
        ({"CERTA_AUTH_CLIENT_CERT": "true"}, "CERTA_AUTH_CLIENT_CERT"),
        ({"CERTA_TLS_CERT_FILE": __file__}, "CERTA_TLS_KEY_FILE"),
        ({"CERTA_TLS_CLIENT_CA_FILE": __file__}, "CERTA_TLS_CLIENT_CA_FILE"),
        ({"CERTA_AUTH_JWKS_FILE": __file__}, "CERTA_AUTH_JWT_ISSUER"),
    ],
)
def test_bad_security_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        load_settings({**REDIS, **env})
    assert str(raised.value).startswith(variable)


JWKS_URL = {
    "CERTA_STORE": "memory",
    "CERTA_AUTH_JWKS_URL": "https://login.example/keys",
    "CERTA_AUTH_JWT_ISSUER": "https://login.example",
    "CERTA_AUTH_JWT_AUDIENCE": "certa",
}


def test_a_jwks_url_is_an_authentication_method_refreshed_every_300_s_by_default() -> None:
    auth = load_settings(JWKS_URL).auth
    assert (auth.jwks_url, auth.jwks_refresh_s, auth.configured) == ("https://login.example/keys", 300.0, True)
    assert load_settings({**JWKS_URL, "CERTA_AUTH_JWKS_REFRESH_S": "30"}).auth.jwks_refresh_s == 30.0


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CERTA_AUTH_JWKS_URL": "ldap://login.example/keys"}, "CERTA_AUTH_JWKS_URL"),
        ({"CERTA_AUTH_JWKS_REFRESH_S": "0"}, "CERTA_AUTH_JWKS_REFRESH_S"),
        ({"CERTA_AUTH_JWKS_REFRESH_S": "often"}, "CERTA_AUTH_JWKS_REFRESH_S"),
        ({"CERTA_AUTH_JWT_AUDIENCE": ""}, "CERTA_AUTH_JWT_ISSUER"),
        ({"CERTA_AUTH_JWKS_FILE": __file__}, "CERTA_AUTH_JWKS_URL"),
    ],
)
def test_bad_jwks_url_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        load_settings({**JWKS_URL, **env})
    assert str(raised.value).startswith(variable)
