"""The OpenAI-compatible adapter's settings, read from its backend URL.

`openai+http://host:port/v1?OPTIONS` or `openai+https://host/v1?OPTIONS`. Options:

* `model=NAME` - the model to request by default; when absent, the first model `GET /models` lists.
* `token_prompts=true` - send prompts as token ids, tokenising text through the server's `/tokenize` endpoint
  (vLLM, SGLang and llama.cpp serve it next to `/v1`); falls back to text when the server has no such endpoint.
* `api_key_file=PATH`, `headers_file=PATH` - a bearer token and extra headers, from files (`certa.backends
  .credentials`). Credentials in the URL itself (`https://user:key@host`) are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from certa.backends.credentials import UpstreamCredentials
from certa.backends.url_options import UrlOptions
from certa.config import BackendSpec

OPENAI_SCHEMES = {"openai+http": "http", "openai+https": "https"}


@dataclass(frozen=True)
class OpenAIOptions:
    base_url: str
    model: str = ""
    token_prompts: bool = False
    credentials: UpstreamCredentials = field(default_factory=UpstreamCredentials)

    @property
    def tokenize_url(self) -> str:
        """The `/tokenize` endpoint, which servers put at their root rather than under `/v1`."""
        return self.base_url.removesuffix("/v1") + "/tokenize"

    @classmethod
    def from_spec(cls, spec: BackendSpec) -> OpenAIOptions:
        options = UrlOptions(spec)
        parts = urlsplit(spec.url)
        if parts.scheme not in OPENAI_SCHEMES:
            options.fail(f"URL scheme must be one of {', '.join(OPENAI_SCHEMES)}, got {parts.scheme!r}")
        if not parts.hostname:
            options.fail(f"URL must be {parts.scheme}://HOST[:PORT]/v1, got {spec.url!r}")
        if parts.username or parts.password:
            options.fail("credentials do not belong in the URL: put the token in a file and name it in api_key_file")
        base_url = urlunsplit((OPENAI_SCHEMES[parts.scheme], parts.netloc, parts.path.rstrip("/"), "", ""))
        result = cls(
            base_url=base_url,
            model=options.text("model", cls.model),
            token_prompts=options.boolean("token_prompts", cls.token_prompts),
            credentials=UpstreamCredentials.from_options(options, spec.name),
        )
        options.finish()
        return result
