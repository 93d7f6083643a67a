"""The Triton / TensorRT-LLM backend adapter.

Two ways to generate, chosen per backend URL (`mode=auto|text|tokens`, see `options`):

* token mode (`tokens`) - `preprocessing` -> `tensorrt_llm` -> `postprocessing` driven by the controller,
  so continuing a path sends exactly the ids it generated; preferred when those three models are ready;
* text mode (`text`) - the `ensemble` / `tensorrt_llm_bls` text contract.

Every call is one `ModelStreamInfer` stream (`rpc`); the model's declared inputs are read once with the
`ModelConfig` RPC and requests are projected onto them (`tensors`, `sampling`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from certa.backends.call_metadata import MetadataProvider
from certa.backends.port import Delta
from certa.backends.triton.options import TritonOptions
from certa.backends.triton.rpc import TritonConnection
from certa.backends.triton.text import stream_text
from certa.backends.triton.tokenizer import TritonTokenizer
from certa.backends.triton.tokens import TokenGeneration
from certa.config import BackendSpec
from certa.core.errors import BackendUnavailable
from certa.core.types import GenerationRequest


class TritonBackend:
    """A Triton server hosting TensorRT-LLM's models (or models with the same tensor contract).

    `metadata_provider` is called for every gRPC call and its pairs are sent as call metadata (e.g. W3C trace
    context); by default no metadata is sent.
    """

    def __init__(
        self,
        spec: BackendSpec,
        *,
        connect_timeout_s: float = 10.0,
        metadata_provider: MetadataProvider | None = None,
    ) -> None:
        self._name = spec.name
        self.options = TritonOptions.from_spec(spec)
        self._connection = TritonConnection(
            spec.name,
            self.options.target,
            connect_timeout_s=connect_timeout_s,
            metadata_provider=self.options.credentials.with_call_metadata(metadata_provider),
        )
        tokenizer = TritonTokenizer(self._connection, self.options.preprocessing, self.options.postprocessing)
        self._tokens = TokenGeneration(
            self._connection,
            tokenizer,
            self.options.token_model,
            end_id=self.options.end_id,
            pad_id=self.options.pad_id,
        )
        self._mode: str | None = None if self.options.mode == "auto" else self.options.mode

    @property
    def name(self) -> str:
        return self._name

    @property
    def default_model(self) -> str:
        return self.options.text_model

    @property
    def url(self) -> str:
        return self._connection.url

    async def _missing(self, models: tuple[str, ...]) -> list[str]:
        return [model for model in models if not await self._connection.model_ready(model)]

    async def mode(self) -> str:
        """`text` or `tokens`; in `auto` mode decided once, by whether the token-mode models are all ready."""
        if self._mode is None:
            self._mode = "text" if await self._missing(self.options.token_models) else "tokens"
        return self._mode

    async def stream(self, request: GenerationRequest, model: str) -> AsyncIterator[Delta]:
        """Generate with `model`: the default model follows the mode, the token model name forces token mode,
        and any other name is used as a text-contract model."""
        target = model or self.default_model
        use_tokens = target == self.options.token_model or (
            target == self.default_model and await self.mode() == "tokens"
        )
        if use_tokens:
            deltas = self._tokens.stream(request)
        else:
            deltas = stream_text(
                self._connection, target, request, end_id=self.options.end_id, pad_id=self.options.pad_id
            )
        async with aclosing(deltas):
            async for delta in deltas:
                yield delta

    async def check_ready(self) -> None:
        if not await self._connection.server_ready():
            raise BackendUnavailable(self._name, f"Triton at {self.url} is not ready")
        text_missing = await self._missing((self.options.text_model,)) if self.options.mode != "tokens" else []
        tokens_missing = await self._missing(self.options.token_models) if self.options.mode != "text" else []
        if self.options.mode == "text" and text_missing:
            raise BackendUnavailable(self._name, f"text model {text_missing[0]!r} is not ready at {self.url}")
        if self.options.mode == "tokens" and tokens_missing:
            raise BackendUnavailable(self._name, f"token-mode models {tokens_missing} are not ready at {self.url}")
        if self.options.mode == "auto":
            if text_missing and tokens_missing:
                raise BackendUnavailable(
                    self._name,
                    f"neither text model {self.options.text_model!r} nor token-mode models (missing "
                    f"{tokens_missing}) are ready at {self.url}",
                )
            self._mode = "text" if tokens_missing else "tokens"

    async def served_models(self) -> frozenset[str]:
        """The ready models of the repository, less the token-mode ensemble's tokenizer steps (they take text or
        ids in and give no generation out)."""
        return await self._connection.ready_models() - {self.options.preprocessing, self.options.postprocessing}

    async def chat_template(self, model: str) -> str | None:
        """The `chat_template` parameter of the model's config; for the default model the token-mode models'
        configs are consulted too. None when no ready model publishes one."""
        target = model or self.default_model
        candidates = [target]
        if target == self.default_model:
            candidates += [self.options.preprocessing, self.options.token_model]
        for candidate in candidates:
            if not await self._connection.model_ready(candidate):
                continue
            template = (await self._connection.signature(candidate)).parameter("chat_template")
            if template:
                return template
        return None

    async def close(self) -> None:
        await self._connection.close()
