"""Choosing and configuring an adapter from a backend URL (no server is contacted)."""

from __future__ import annotations

import pytest

from certa.backends.factory import build_backend
from certa.backends.openai.backend import OpenAIBackend
from certa.backends.triton.backend import TritonBackend
from certa.config import BackendSpec
from certa.core.errors import InvalidArgument

pytestmark = pytest.mark.unit


def build(url: str) -> object:
    return build_backend(BackendSpec("main", url), connect_timeout_s=1.0)


@pytest.mark.parametrize(
    ("url", "adapter"),
    [
        ("triton://127.0.0.1:8001", TritonBackend),
        ("triton+tls://triton.example:443", TritonBackend),
        ("openai+http://127.0.0.1:8000/v1", OpenAIBackend),
        ("openai+https://api.example/v1", OpenAIBackend),
    ],
)
def test_the_scheme_chooses_the_adapter(url: str, adapter: type) -> None:
    backend = build(url)
    assert isinstance(backend, adapter)
    assert backend.name == "main"


def test_an_unknown_scheme_names_the_setting_and_the_supported_schemes() -> None:
    with pytest.raises(InvalidArgument) as raised:
        build("grpc://127.0.0.1:8001")
    message = str(raised.value)
    assert raised.value.field == "CERTA_BACKENDS"
    assert "'main'" in message and "'grpc'" in message
    for scheme in ("triton://", "triton+tls://", "openai+http://", "openai+https://"):
        assert scheme in message


def test_triton_options_come_from_the_query() -> None:
    backend = build(
        "triton://10.0.0.5:9001?mode=tokens&text_model=tensorrt_llm_bls&token_model=llm"
        "&preprocessing=pre&postprocessing=post&end_id=2&pad_id=3"
    )
    assert isinstance(backend, TritonBackend)
    options = backend.options
    assert options.target.address == "10.0.0.5:9001" and not options.target.tls
    assert (options.mode, options.text_model, options.token_models) == (
        "tokens",
        "tensorrt_llm_bls",
        ("pre", "llm", "post"),
    )
    assert (options.end_id, options.pad_id) == (2, 3)
    assert backend.default_model == "tensorrt_llm_bls"


def test_triton_defaults_and_model_alias() -> None:
    backend = build("triton+tls://triton.internal?model=ensemble_v2&ca_file=/etc/certa/ca.pem")
    assert isinstance(backend, TritonBackend)
    options = backend.options
    assert options.target.address == "triton.internal:8001"
    assert options.target.tls and options.target.ca_file == "/etc/certa/ca.pem"
    assert options.mode == "auto" and options.text_model == "ensemble_v2"
    assert options.token_models == ("preprocessing", "tensorrt_llm", "postprocessing")


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("triton://h:8001?mode=fast", "must be one of auto, text, tokens"),
        ("triton://h:8001?modle=text", "unknown option(s) modle"),
        ("triton://h:8001?end_id=eos", "must be an integer"),
        ("triton://h:8001?ca_file=/ca.pem", "ca_file needs a triton+tls:// URL"),
        ("triton://h:8001?mode=text&mode=tokens", "given twice"),
        ("triton://h:8001/v2", "must be triton://HOST:PORT"),
        ("openai+http://h:8000/v1?token_prompts=maybe", "must be true or false"),
        ("openai+http://h:8000/v1?temperature=1", "unknown option(s) temperature"),
    ],
)
def test_bad_options_are_invalid_arguments_on_the_setting(url: str, complaint: str) -> None:
    with pytest.raises(InvalidArgument, match="CERTA_BACKENDS") as raised:
        build(url)
    assert complaint in str(raised.value)
    assert "'main'" in str(raised.value)


def test_openai_options_come_from_the_url() -> None:
    backend = build("openai+https://llm.example:8443/v1/?model=qwen&token_prompts=true")
    assert isinstance(backend, OpenAIBackend)
    assert backend.options.base_url == "https://llm.example:8443/v1"
    assert backend.options.tokenize_url == "https://llm.example:8443/tokenize"
    assert backend.options.token_prompts
    assert backend.default_model == "qwen"
