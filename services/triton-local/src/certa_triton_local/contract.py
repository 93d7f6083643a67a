"""The TensorRT-LLM in-flight-batcher contract: model names, tensor names, data types and dims.

Names, types and dims follow `triton_backend/all_models/inflight_batcher_llm/*/config.pbtxt` of TensorRT-LLM,
restricted to what a text-only, single-beam server can honour (no LoRA, multimodal, prompt tuning, logits or
speculative-decoding inputs: a client sending one gets Triton's "unexpected inference input" error naming it).
Every model has `max_batch_size > 0`, so clients send a leading batch dimension exactly as with the real models.

Extensions (not in TensorRT-LLM) are marked as such: the input `random_seed` (the older name of `seed`) and the
output `num_cached_tokens` (prompt tokens served from the KV cache, exact, next to TRT-LLM's block counts).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_BATCH_SIZE = 8
TOKENS_PER_BLOCK = 32

ENSEMBLE = "ensemble"
BLS = "tensorrt_llm_bls"
PREPROCESSING = "preprocessing"
ENGINE = "tensorrt_llm"
POSTPROCESSING = "postprocessing"
TEXT_MODELS = (ENSEMBLE, BLS)
ALL_MODELS = (ENSEMBLE, BLS, PREPROCESSING, ENGINE, POSTPROCESSING)


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    dims: tuple[int, ...]
    optional: bool = False
    scalar: bool = False  # TRT-LLM declares `reshape: { shape: [ ] }` so the backend sees [batch]

    def pbtxt(self) -> str:
        lines = [
            f'    name: "{self.name}"',
            f"    data_type: {self.dtype}",
            f"    dims: [ {', '.join(str(d) for d in self.dims)} ]",
        ]
        if self.scalar:
            lines.append("    reshape: { shape: [ ] }")
        if self.optional:
            lines.append("    optional: true")
        return "  {\n" + "\n".join(lines) + "\n  }"


def _opt(name: str, dtype: str, dims: tuple[int, ...] = (1,)) -> Tensor:
    return Tensor(name, dtype, dims, optional=True)


def _opt_scalar(name: str, dtype: str) -> Tensor:
    return Tensor(name, dtype, (1,), optional=True, scalar=True)


PERF_OUTPUTS = (
    Tensor("kv_cache_alloc_new_blocks", "TYPE_INT32", (1,)),
    Tensor("kv_cache_reused_blocks", "TYPE_INT32", (1,)),
    Tensor("kv_cache_alloc_total_blocks", "TYPE_INT32", (1,)),
    Tensor("arrival_time_ns", "TYPE_INT64", (1,)),
    Tensor("first_scheduled_time_ns", "TYPE_INT64", (1,)),
    Tensor("first_token_time_ns", "TYPE_INT64", (1,)),
    Tensor("last_token_time_ns", "TYPE_INT64", (1,)),
    Tensor("acceptance_rate", "TYPE_FP32", (1,)),
    Tensor("total_accepted_draft_tokens", "TYPE_INT32", (1,)),
    Tensor("total_draft_tokens", "TYPE_INT32", (1,)),
    Tensor("num_cached_tokens", "TYPE_INT32", (1,)),  # extension
)
COUNT_OUTPUTS = (
    Tensor("num_input_tokens", "TYPE_INT32", (1,)),
    Tensor("num_output_tokens", "TYPE_INT32", (1,)),
)
LOG_PROB_OUTPUTS = (
    Tensor("cum_log_probs", "TYPE_FP32", (-1,)),
    Tensor("output_log_probs", "TYPE_FP32", (-1, -1)),
)

TEXT_INPUTS = (
    Tensor("text_input", "TYPE_STRING", (1,)),
    Tensor("max_tokens", "TYPE_INT32", (1,)),
    _opt("bad_words", "TYPE_STRING", (-1,)),
    _opt("stop_words", "TYPE_STRING", (-1,)),
    _opt("exclude_input_in_output", "TYPE_BOOL"),
    _opt("end_id", "TYPE_INT32"),
    _opt("pad_id", "TYPE_INT32"),
    _opt("top_k", "TYPE_INT32"),
    _opt("top_p", "TYPE_FP32"),
    _opt("temperature", "TYPE_FP32"),
    _opt("length_penalty", "TYPE_FP32"),
    _opt("repetition_penalty", "TYPE_FP32"),
    _opt("min_tokens", "TYPE_INT32"),
    _opt("presence_penalty", "TYPE_FP32"),
    _opt("frequency_penalty", "TYPE_FP32"),
    _opt("seed", "TYPE_UINT64"),
    _opt("random_seed", "TYPE_UINT64"),  # extension: the older name of `seed`
    _opt("return_log_probs", "TYPE_BOOL"),
    _opt("return_context_logits", "TYPE_BOOL"),
    _opt("return_generation_logits", "TYPE_BOOL"),
    _opt("return_perf_metrics", "TYPE_BOOL"),
    _opt("return_num_input_tokens", "TYPE_BOOL"),
    _opt("return_num_output_tokens", "TYPE_BOOL"),
    _opt("beam_width", "TYPE_INT32"),
    _opt("num_return_sequences", "TYPE_INT32"),
    _opt("stream", "TYPE_BOOL"),
)
TEXT_OUTPUTS = (Tensor("text_output", "TYPE_STRING", (-1,)), *LOG_PROB_OUTPUTS, *PERF_OUTPUTS, *COUNT_OUTPUTS)

ENGINE_INPUTS = (
    Tensor("input_ids", "TYPE_INT32", (-1,), optional=True),  # optional in TRT-LLM too: a `stop` request has none
    Tensor("input_lengths", "TYPE_INT32", (1,), scalar=True),
    Tensor("request_output_len", "TYPE_INT32", (1,), scalar=True),
    _opt_scalar("end_id", "TYPE_INT32"),
    _opt_scalar("pad_id", "TYPE_INT32"),
    _opt("stop_words_list", "TYPE_INT32", (2, -1)),
    _opt("bad_words_list", "TYPE_INT32", (2, -1)),
    _opt_scalar("beam_width", "TYPE_INT32"),
    _opt_scalar("num_return_sequences", "TYPE_INT32"),
    _opt_scalar("temperature", "TYPE_FP32"),
    _opt_scalar("runtime_top_k", "TYPE_INT32"),
    _opt_scalar("runtime_top_p", "TYPE_FP32"),
    _opt_scalar("len_penalty", "TYPE_FP32"),
    _opt_scalar("repetition_penalty", "TYPE_FP32"),
    _opt_scalar("min_tokens", "TYPE_INT32"),
    _opt_scalar("presence_penalty", "TYPE_FP32"),
    _opt_scalar("frequency_penalty", "TYPE_FP32"),
    _opt_scalar("seed", "TYPE_UINT64"),
    _opt_scalar("random_seed", "TYPE_UINT64"),  # extension: the older name of `seed`
    _opt_scalar("return_log_probs", "TYPE_BOOL"),
    _opt_scalar("return_context_logits", "TYPE_BOOL"),
    _opt_scalar("return_generation_logits", "TYPE_BOOL"),
    _opt_scalar("return_perf_metrics", "TYPE_BOOL"),
    _opt_scalar("return_num_input_tokens", "TYPE_BOOL"),
    _opt_scalar("return_num_output_tokens", "TYPE_BOOL"),
    _opt_scalar("exclude_input_in_output", "TYPE_BOOL"),
    _opt_scalar("stop", "TYPE_BOOL"),
    _opt_scalar("streaming", "TYPE_BOOL"),
)
ENGINE_OUTPUTS = (
    Tensor("output_ids", "TYPE_INT32", (-1, -1)),
    Tensor("sequence_length", "TYPE_INT32", (-1,)),
    *LOG_PROB_OUTPUTS,
    *PERF_OUTPUTS,
    *COUNT_OUTPUTS,
)

PREPROCESSING_INPUTS = (
    Tensor("QUERY", "TYPE_STRING", (1,)),
    Tensor("REQUEST_OUTPUT_LEN", "TYPE_INT32", (1,)),
    _opt("BAD_WORDS_DICT", "TYPE_STRING", (-1,)),
    _opt("STOP_WORDS_DICT", "TYPE_STRING", (-1,)),
    _opt("END_ID", "TYPE_INT32"),
    _opt("PAD_ID", "TYPE_INT32"),
)
PREPROCESSING_OUTPUTS = (
    Tensor("INPUT_ID", "TYPE_INT32", (-1,)),
    Tensor("REQUEST_INPUT_LEN", "TYPE_INT32", (1,)),
    Tensor("BAD_WORDS_IDS", "TYPE_INT32", (2, -1)),
    Tensor("STOP_WORDS_IDS", "TYPE_INT32", (2, -1)),
    Tensor("REQUEST_OUTPUT_LEN", "TYPE_INT32", (-1,)),
    Tensor("OUT_END_ID", "TYPE_INT32", (1,)),
    Tensor("OUT_PAD_ID", "TYPE_INT32", (1,)),
)

POSTPROCESSING_INPUTS = (
    Tensor("TOKENS_BATCH", "TYPE_INT32", (-1, -1)),
    Tensor("SEQUENCE_LENGTH", "TYPE_INT32", (-1,)),
)
POSTPROCESSING_OUTPUTS = (Tensor("OUTPUT", "TYPE_STRING", (-1,)),)


@dataclass(frozen=True)
class ModelContract:
    name: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    decoupled: bool


CONTRACTS = {
    ENSEMBLE: ModelContract(ENSEMBLE, TEXT_INPUTS, TEXT_OUTPUTS, decoupled=True),
    BLS: ModelContract(BLS, TEXT_INPUTS, TEXT_OUTPUTS, decoupled=True),
    PREPROCESSING: ModelContract(PREPROCESSING, PREPROCESSING_INPUTS, PREPROCESSING_OUTPUTS, decoupled=False),
    ENGINE: ModelContract(ENGINE, ENGINE_INPUTS, ENGINE_OUTPUTS, decoupled=True),
    POSTPROCESSING: ModelContract(POSTPROCESSING, POSTPROCESSING_INPUTS, POSTPROCESSING_OUTPUTS, decoupled=False),
}
