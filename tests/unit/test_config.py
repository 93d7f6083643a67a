"""Settings from CERTA_* variables: parsed once, and every bad value named."""

from __future__ import annotations

import pytest

from certa.config import BackendSpec, Settings, load_settings
from certa.core.errors import InvalidArgument

pytestmark = pytest.mark.unit


def test_defaults_and_backends() -> None:
    settings = load_settings({"CERTA_BACKENDS": "a=triton://h:8001, b=openai+http://h:8000/v1"})
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
        load_settings(env)
    assert str(raised.value).startswith(variable)
