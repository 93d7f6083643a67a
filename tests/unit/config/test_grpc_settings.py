"""Connection age and keepalive of the gRPC server (CERTA_GRPC_*): parsed, validated with the variable named, and
turned into the gRPC server options CertaServer is built with."""

from __future__ import annotations

import pytest

from certa.config import GrpcSettings, Settings, load_settings
from certa.core.errors import InvalidArgument
from certa.server import UNREQUESTED_CALL_TIMEOUT_S, server_options

pytestmark = pytest.mark.unit

BASE = {"CERTA_REDIS_URL": "redis://127.0.0.1:6379/0", "CERTA_AUTH_DISABLED": "true"}


def test_defaults_age_connections_and_keep_them_alive() -> None:
    settings = load_settings(BASE)
    assert settings.grpc == GrpcSettings()
    assert dict(server_options(settings)) == {
        "grpc.server_max_unrequested_time_in_server": UNREQUESTED_CALL_TIMEOUT_S,
        "grpc.max_connection_age_ms": 300_000,
        # Unset grace follows CERTA_MAX_DEADLINE_S: no call the API allows is cut by the connection's age.
        "grpc.max_connection_age_grace_ms": 3_600_000,
        "grpc.keepalive_time_ms": 60_000,
        "grpc.keepalive_timeout_ms": 20_000,
        "grpc.keepalive_permit_without_calls": 1,
        "grpc.http2.min_ping_interval_without_data_ms": 10_000,
    }


def test_every_variable_reaches_its_option() -> None:
    settings = load_settings(
        {
            **BASE,
            "CERTA_MAX_DEADLINE_S": "30",
            "CERTA_DEFAULT_DEADLINE_S": "30",
            "CERTA_GRPC_MAX_CONNECTION_AGE_S": "1.5",
            "CERTA_GRPC_MAX_CONNECTION_AGE_GRACE_S": "45",
            "CERTA_GRPC_KEEPALIVE_TIME_S": "7",
            "CERTA_GRPC_KEEPALIVE_TIMEOUT_S": "0.5",
            "CERTA_GRPC_KEEPALIVE_PERMIT_WITHOUT_CALLS": "false",
            "CERTA_GRPC_MIN_PING_INTERVAL_S": "2",
        }
    )
    assert settings.grpc == GrpcSettings(
        max_connection_age_s=1.5,
        max_connection_age_grace_s=45.0,
        keepalive_time_s=7.0,
        keepalive_timeout_s=0.5,
        keepalive_permit_without_calls=False,
        min_ping_interval_s=2.0,
    )
    options = dict(server_options(settings))
    assert (options["grpc.max_connection_age_ms"], options["grpc.max_connection_age_grace_ms"]) == (1500, 45_000)
    assert (options["grpc.keepalive_time_ms"], options["grpc.keepalive_timeout_ms"]) == (7000, 500)
    assert options["grpc.keepalive_permit_without_calls"] == 0
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 2000


def test_age_zero_lets_connections_live_forever() -> None:
    options = dict(server_options(load_settings({**BASE, "CERTA_GRPC_MAX_CONNECTION_AGE_S": "0"})))
    assert "grpc.max_connection_age_ms" not in options and "grpc.max_connection_age_grace_ms" not in options


def test_grace_follows_the_deadline_cap_when_unset() -> None:
    settings = Settings(max_deadline_s=7200.0)
    assert dict(server_options(settings))["grpc.max_connection_age_grace_ms"] == 7_200_000


@pytest.mark.parametrize(
    ("env", "variable", "says"),
    [
        ({"CERTA_GRPC_MAX_CONNECTION_AGE_S": "-1"}, "CERTA_GRPC_MAX_CONNECTION_AGE_S", ">= 0"),
        ({"CERTA_GRPC_MAX_CONNECTION_AGE_S": "soon"}, "CERTA_GRPC_MAX_CONNECTION_AGE_S", "must be a float"),
        ({"CERTA_GRPC_KEEPALIVE_TIME_S": "0"}, "CERTA_GRPC_KEEPALIVE_TIME_S", ">= 0.001"),
        ({"CERTA_GRPC_KEEPALIVE_TIMEOUT_S": "-3"}, "CERTA_GRPC_KEEPALIVE_TIMEOUT_S", ">= 0.001"),
        ({"CERTA_GRPC_MIN_PING_INTERVAL_S": "0"}, "CERTA_GRPC_MIN_PING_INTERVAL_S", ">= 0.001"),
        ({"CERTA_GRPC_KEEPALIVE_PERMIT_WITHOUT_CALLS": "maybe"}, "CERTA_GRPC_KEEPALIVE_PERMIT_WITHOUT_CALLS", "true"),
        # A grace shorter than the longest deadline would cut calls the API allows.
        (
            {"CERTA_GRPC_MAX_CONNECTION_AGE_GRACE_S": "60"},
            "CERTA_GRPC_MAX_CONNECTION_AGE_GRACE_S",
            "CERTA_MAX_DEADLINE_S",
        ),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str, says: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        load_settings({**BASE, **env})
    assert str(raised.value).startswith(variable)
    assert says in str(raised.value)
