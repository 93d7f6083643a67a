"""Backend calls by the OpenTelemetry GenAI semantic conventions: the CLIENT span's `gen_ai.*` attributes and the
GenAI client metrics `gen_ai.client.token.usage` and `gen_ai.client.operation.duration`.

Every backend call is a completion (`gen_ai.operation.name` = `text_completion`): Certa sends a prompt and reads
generated text. `gen_ai.provider.name` is the kind of server behind the backend URL: `triton`, or `openai` for any
OpenAI-compatible server (vLLM, SGLang, llama.cpp, ...); `_OTHER` for an adapter registered without one (the
scripted test backends). The deprecated `gen_ai.system` carries the same value for backends that still read it.
"""

from __future__ import annotations

from opentelemetry import metrics
from opentelemetry.util.types import AttributeValue

OPERATION = "text_completion"
OTHER_PROVIDER = "_OTHER"
# The bucket boundaries the conventions advise for each metric.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS_S = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)


def span_name(model: str) -> str:
    """`{gen_ai.operation.name} {gen_ai.request.model}`, as the conventions name a GenAI client span."""
    return f"{OPERATION} {model}" if model else OPERATION


def request_attributes(provider: str, model: str, max_tokens: int) -> dict[str, AttributeValue]:
    """What is known before the call: operation, provider, model, the token cap."""
    return {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": provider,
        "gen_ai.system": provider,
        "gen_ai.request.model": model,
        "gen_ai.request.max_tokens": max_tokens,
    }


class GenAiClientMetrics:
    """The two GenAI client instruments."""

    def __init__(self, meter: metrics.Meter) -> None:
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Tokens used per backend call, by token type (input: prompt, output: generated)",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="Backend call duration, from the request to the last token (or the cancellation)",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS_S,
        )

    def record(
        self,
        *,
        provider: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        duration_s: float,
        error_type: str | None,
    ) -> None:
        labels: dict[str, AttributeValue] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
        }
        self._duration.record(duration_s, {**labels, **({"error.type": error_type} if error_type else {})})
        if error_type is None:
            self._tokens.record(input_tokens, {**labels, "gen_ai.token.type": "input"})
            self._tokens.record(output_tokens, {**labels, "gen_ai.token.type": "output"})
