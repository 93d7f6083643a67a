"""The Triton adapter's settings, read from its backend URL.

`triton://host:port?OPTIONS` or `triton+tls://host:port?OPTIONS` (port 8001 when omitted). Options:

* `mode=auto|text|tokens` - `auto` (default) uses token mode when `preprocessing`, the token model and
  `postprocessing` are all ready, else text mode.
* `text_model=NAME` (alias `model`) - the text-contract model, default `ensemble` (or `tensorrt_llm_bls`).
* `token_model=NAME` (default `tensorrt_llm`), `preprocessing=NAME`, `postprocessing=NAME` - token-mode models.
* `end_id=N`, `pad_id=N` - override the end / pad ids (token mode otherwise asks the model config, then the
  server's tokeniser; text mode sends them only when set).
* `ca_file=PATH` - PEM roots to verify the server with (`triton+tls://` only; default: the system roots).
* `api_key_file=PATH`, `headers_file=PATH` - a bearer token and extra call metadata, from files
  (`certa.backends.credentials`), for a gateway in front of Triton; use them with `triton+tls://`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from certa.backends.credentials import UpstreamCredentials
from certa.backends.triton.rpc import ChannelTarget
from certa.backends.url_options import UrlOptions
from certa.config import BackendSpec

TRITON_SCHEMES = ("triton", "triton+tls")
MODES = ("auto", "text", "tokens")
DEFAULT_PORT = 8001


@dataclass(frozen=True)
class TritonOptions:
    target: ChannelTarget
    mode: str = "auto"
    text_model: str = "ensemble"
    token_model: str = "tensorrt_llm"
    preprocessing: str = "preprocessing"
    postprocessing: str = "postprocessing"
    end_id: int | None = None
    pad_id: int | None = None
    credentials: UpstreamCredentials = field(default_factory=UpstreamCredentials)

    @property
    def token_models(self) -> tuple[str, str, str]:
        return (self.preprocessing, self.token_model, self.postprocessing)

    @classmethod
    def from_spec(cls, spec: BackendSpec) -> TritonOptions:
        options = UrlOptions(spec)
        parts = urlsplit(spec.url)
        if parts.scheme not in TRITON_SCHEMES:
            options.fail(f"URL scheme must be one of {', '.join(TRITON_SCHEMES)}, got {parts.scheme!r}")
        if not parts.hostname or parts.path not in ("", "/"):
            options.fail(f"URL must be {parts.scheme}://HOST:PORT, got {spec.url!r}")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError:
            options.fail(f"URL {spec.url!r} has an invalid port")
        tls = parts.scheme == "triton+tls"
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        text_model = options.text("text_model", options.text("model", cls.text_model))
        result = cls(
            target=ChannelTarget(f"{host}:{port}", tls=tls, ca_file=options.optional_text("ca_file")),
            mode=options.choice("mode", MODES, cls.mode),
            text_model=text_model,
            token_model=options.text("token_model", cls.token_model),
            preprocessing=options.text("preprocessing", cls.preprocessing),
            postprocessing=options.text("postprocessing", cls.postprocessing),
            end_id=options.optional_int("end_id"),
            pad_id=options.optional_int("pad_id"),
            credentials=UpstreamCredentials.from_options(options, spec.name),
        )
        if result.target.ca_file and not tls:
            options.fail("option ca_file needs a triton+tls:// URL")
        options.finish()
        return result
