"""A Target from the environment, and what it sends: credentials as metadata, TLS when any TLS setting is given."""

from __future__ import annotations

import pytest

from certa_client import Target

pytestmark = pytest.mark.unit


def test_from_env_reads_every_setting_and_keeps_defaults_for_the_rest() -> None:
    target = Target.from_env({"CERTA_ADDRESS": "certa:443", "CERTA_API_KEY": "k", "CERTA_TLS": "true"})
    assert target == Target("certa:443", api_key="k", tls=True)
    assert Target.from_env({}) == Target()
    full = Target.from_env({
        "CERTA_CA_FILE": "ca.pem", "CERTA_CLIENT_CERT_FILE": "c.pem", "CERTA_CLIENT_KEY_FILE": "c.key",
        "CERTA_SERVER_NAME": "certa.internal", "CERTA_TENANT": "acme",
    })
    assert (full.ca_file, full.client_cert_file, full.client_key_file, full.server_name, full.tenant) == (
        "ca.pem", "c.pem", "c.key", "certa.internal", "acme"
    )


def test_metadata_and_tls() -> None:
    assert Target().metadata == () and not Target().secure
    assert Target(api_key="k", tenant="acme").metadata == (("authorization", "Bearer k"), ("x-certa-tenant", "acme"))
    assert Target(tls=True).secure and Target(ca_file="ca.pem").secure
    assert Target().channel_credentials() is None


@pytest.mark.parametrize("bad", [{"address": ""}, {"client_key_file": "c.key"}])
def test_contradictory_targets_are_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"address|client_cert_file"):
        Target(**bad)  # type: ignore[arg-type]
