"""Chart values for credentials: bearer tokens and headers of extra backends from Secrets, JWKS from a URL."""

from __future__ import annotations

import re

import pytest

from tests.contract.chart.conftest import render, render_error

pytestmark = pytest.mark.chart

HOSTED = (
    "controller.config.extraBackends[0].name=hosted",
    "controller.config.extraBackends[0].url=openai+https://api.example/v1?model=m",
    "controller.config.extraBackends[0].apiKeySecret.name=hosted-token",
    "controller.config.extraBackends[0].apiKeySecret.key=token",
    "controller.config.extraBackends[0].headersSecret.name=hosted-headers",
    "controller.config.extraBackends[0].headersSecret.key=headers.json",
    "controller.config.extraBackends[1].name=plain",
    "controller.config.extraBackends[1].url=openai+http://vllm:8000/v1",
)


def test_an_extra_backends_token_and_headers_are_mounted_and_named_in_its_url() -> None:
    rendered = render(*HOSTED)
    backends = rendered.config["CERTA_BACKENDS"].split(",")
    assert backends[1:] == [
        "hosted=openai+https://api.example/v1?model=m&api_key_file=/etc/certa/backends/hosted/api-key"
        "&headers_file=/etc/certa/backends/hosted/headers.json",
        "plain=openai+http://vllm:8000/v1",
    ]
    pod = rendered.controller["spec"]["template"]["spec"]
    [volume] = [volume for volume in pod["volumes"] if volume["name"] == "backend-0-credentials"]
    assert volume["projected"]["sources"] == [
        {"secret": {"name": "hosted-token", "items": [{"key": "token", "path": "api-key"}]}},
        {"secret": {"name": "hosted-headers", "items": [{"key": "headers.json", "path": "headers.json"}]}},
    ]
    mounts = pod["containers"][0]["volumeMounts"]
    assert {"name": "backend-0-credentials", "mountPath": "/etc/certa/backends/hosted", "readOnly": True} in mounts
    assert not [volume for volume in pod["volumes"] if volume["name"] == "backend-1-credentials"]
    assert "token" not in rendered.config["CERTA_BACKENDS"].split("api_key_file")[0]


def test_a_jwks_url_becomes_the_controllers_setting() -> None:
    rendered = render(
        "auth.jwt.jwks.url=https://login.example/keys",
        "auth.jwt.jwks.refreshSeconds=60",
        "auth.jwt.issuer=https://login.example",
        "auth.jwt.audience=certa",
    )
    assert rendered.config["CERTA_AUTH_JWKS_URL"] == "https://login.example/keys"
    assert rendered.config["CERTA_AUTH_JWKS_REFRESH_S"] == "60"
    env = {item["name"] for item in rendered.controller_container["env"]}
    assert "CERTA_AUTH_JWKS_FILE" not in env


@pytest.mark.parametrize(
    ("sets", "named"),
    [
        (("auth.jwt.jwks.url=https://login.example/keys",), "issuer"),
        (
            (
                "auth.jwt.jwks.url=https://login.example/keys",
                "auth.jwt.jwks.existingSecret=jwks",
                "auth.jwt.issuer=i",
                "auth.jwt.audience=a",
            ),
            "existingConfigMap|existingSecret",
        ),
        (("auth.jwt.jwks.url=ldap://x",), "url"),
        (
            (
                "controller.config.extraBackends[0].name=h",
                "controller.config.extraBackends[0].url=openai+http://h/v1",
                "controller.config.extraBackends[0].apiKeySecret.name=s",
            ),
            "key",
        ),
    ],
)
def test_unusable_credential_values_are_refused(sets: tuple[str, ...], named: str) -> None:
    assert re.search(named, render_error(*sets))
