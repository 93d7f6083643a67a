"""The local Triton against TensorRT-LLM's contract, with the real server and the SmolLM2 model."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from certa_triton_local.launcher import TritonServer
from certa_triton_local.vocab import Vocab
from tests.contract.triton_local.triton_grpc import Client, Response, scalar, text

pytestmark = pytest.mark.integration

CHAT = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
STORY = CHAT.format("Tell me a long story about a lighthouse keeper and a storm.")
TRUE, FALSE = scalar(True, np.bool_), scalar(False, np.bool_)


def i32(value: int) -> np.ndarray:
    return scalar(value, np.int32)


def text_inputs(prompt: str, max_tokens: int, **extra: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "text_input": text(prompt),
        "max_tokens": i32(max_tokens),
        "return_num_output_tokens": TRUE,
        "return_num_input_tokens": TRUE,
        **extra,
    }


def token_inputs(ids: list[int], max_tokens: int, **extra: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "input_ids": np.array([ids], dtype=np.int32),
        "input_lengths": i32(len(ids)),
        "request_output_len": i32(max_tokens),
        "exclude_input_in_output": TRUE,
        "return_num_output_tokens": TRUE,
        **extra,
    }


def data(responses: list[Response]) -> list[Response]:
    assert not [r.error for r in responses if r.error], [r.error for r in responses]
    assert [r.final for r in responses].count(True) == 1 and responses[-1].final
    return [r for r in responses if r.outputs]


def ids_of(responses: list[Response]) -> list[int]:
    return [int(t) for r in data(responses) for t in r.outputs["output_ids"].reshape(-1)]


def generate_ids(client: Client, ids: list[int], max_tokens: int, **extra: np.ndarray) -> list[int]:
    return ids_of(client.infer("tensorrt_llm", token_inputs(ids, max_tokens, streaming=TRUE, **extra)))


def tokenize(client: Client, prompt: str) -> list[int]:
    (response,) = data(client.infer("preprocessing", {"QUERY": text(prompt), "REQUEST_OUTPUT_LEN": i32(1)}))
    return response.outputs["INPUT_ID"].reshape(-1).tolist()


def detokenize(client: Client, ids: list[int]) -> str:
    (response,) = data(
        client.infer(
            "postprocessing",
            {
                "TOKENS_BATCH": np.array([[ids]], dtype=np.int32),
                "SEQUENCE_LENGTH": np.array([[len(ids)]], dtype=np.int32),
            },
        )
    )
    return response.one("OUTPUT").decode()


def log_lines(triton: TritonServer, needle: str) -> list[str]:
    assert triton.log_path is not None
    return [line for line in Path(triton.log_path).read_text(errors="replace").splitlines() if needle in line]


def wait_for_new_log_lines(triton: TritonServer, needle: str, before: int, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = log_lines(triton, needle)
        if len(lines) > before:
            return lines[before:]
        time.sleep(0.2)
    return []


def test_unary_text_matches_the_token_path(client: Client) -> None:
    (response,) = data(client.infer("ensemble", text_inputs(STORY, 24, exclude_input_in_output=TRUE)))
    ids = generate_ids(client, tokenize(client, STORY), 24)
    assert response.one("text_output").decode() == detokenize(client, ids)
    assert response.one("num_output_tokens") == len(ids) > 0
    assert response.one("num_input_tokens") == len(tokenize(client, STORY))


def test_streaming_text_carries_only_new_text_and_per_response_counts(client: Client) -> None:
    streamed = data(client.infer("ensemble", text_inputs(STORY, 24, stream=TRUE, exclude_input_in_output=TRUE)))
    (unary,) = data(client.infer("ensemble", text_inputs(STORY, 24, exclude_input_in_output=TRUE)))
    counts = [int(r.one("num_output_tokens")) for r in streamed]
    assert all(count in (0, 1) for count in counts)
    assert sum(counts) == unary.one("num_output_tokens")
    assert "".join(r.one("text_output").decode() for r in streamed) == unary.one("text_output").decode()


def test_bls_model_is_the_same_contract(client: Client) -> None:
    inputs = text_inputs(STORY, 12, exclude_input_in_output=TRUE)
    (ensemble,) = data(client.infer("ensemble", inputs))
    (bls,) = data(client.infer("tensorrt_llm_bls", inputs))
    assert bls.one("text_output") == ensemble.one("text_output")
    assert bls.one("num_output_tokens") == ensemble.one("num_output_tokens")


def test_include_input_in_output_like_tensorrt_llm(client: Client) -> None:
    prompt = "The capital of France is"
    (excluded,) = data(client.infer("ensemble", text_inputs(prompt, 8, exclude_input_in_output=TRUE)))
    (included,) = data(client.infer("ensemble", text_inputs(prompt, 8, exclude_input_in_output=FALSE)))
    assert included.one("text_output").decode() == prompt + excluded.one("text_output").decode()
    prompt_tokens = len(tokenize(client, prompt))
    assert included.one("num_output_tokens") == prompt_tokens + excluded.one("num_output_tokens")

    ids = tokenize(client, prompt)
    (token_response,) = data(client.infer("tensorrt_llm", token_inputs(ids, 8, exclude_input_in_output=FALSE)))
    output = token_response.outputs["output_ids"].reshape(-1).tolist()
    assert output[: len(ids)] == ids
    assert token_response.one("num_output_tokens") == len(output) == token_response.one("sequence_length")


def test_token_streaming_sends_new_ids_with_the_final_flag_on_the_last(client: Client) -> None:
    ids = tokenize(client, STORY)
    responses = data(client.infer("tensorrt_llm", token_inputs(ids, 10, streaming=TRUE, exclude_input_in_output=FALSE)))
    assert len(responses) == 10
    assert all(r.outputs["output_ids"].shape == (1, 1, 1) for r in responses)
    assert all(r.one("num_output_tokens") == 1 for r in responses)
    assert responses[-1].final


def test_greedy_is_deterministic_and_seed_is_honoured(client: Client) -> None:
    greedy = text_inputs(STORY, 20, temperature=scalar(0.0, np.float32), exclude_input_in_output=TRUE)
    first, second = (data(client.infer("ensemble", greedy))[0].one("text_output") for _ in range(2))
    assert first == second

    def sample(name: str, seed: int) -> bytes:
        inputs = text_inputs(
            STORY, 20, temperature=scalar(1.0, np.float32), top_k=i32(50), exclude_input_in_output=TRUE
        )
        inputs[name] = scalar(seed, np.uint64)
        return data(client.infer("ensemble", inputs))[0].one("text_output")

    assert sample("seed", 11) == sample("seed", 11) == sample("random_seed", 11)
    assert len({sample("seed", s) for s in (1, 2, 3)}) > 1


def test_stop_words_end_generation_after_the_word(client: Client) -> None:
    ids = tokenize(client, STORY)
    full = generate_ids(client, ids, 30)
    stop_ids = full[6:8]
    stopped = generate_ids(client, ids, 30, stop_words_list=np.array([[stop_ids, [2, -1]]], dtype=np.int32))
    assert stopped == full[:8]

    # The text path tokenises stop words on its own: pick a word whose tokens match the greedy output.
    start = next(
        k for k in range(3, len(full) - 2) if tokenize(client, detokenize(client, full[k : k + 2])) == full[k : k + 2]
    )
    word = detokenize(client, full[start : start + 2])
    (response,) = data(
        client.infer(
            "ensemble", text_inputs(STORY, 30, exclude_input_in_output=TRUE, stop_words=text([word, "never-seen-word"]))
        )
    )
    output = response.one("text_output").decode()
    assert output.endswith(word)
    assert response.one("num_output_tokens") == start + 2


def test_log_probs(client: Client) -> None:
    (response,) = data(
        client.infer("ensemble", text_inputs(STORY, 6, exclude_input_in_output=TRUE, return_log_probs=TRUE))
    )
    log_probs = response.outputs["output_log_probs"].reshape(-1)
    assert len(log_probs) == response.one("num_output_tokens")
    assert np.all(log_probs <= 0)
    assert response.one("cum_log_probs") == pytest.approx(float(log_probs.sum()), abs=1e-3)


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm"])
def test_cancelling_the_stream_stops_generation(client: Client, triton: TritonServer, model: str) -> None:
    if model == "ensemble":
        inputs = text_inputs(STORY, 2000, stream=TRUE, min_tokens=i32(2000))
    else:
        inputs = token_inputs(tokenize(client, STORY), 2000, streaming=TRUE, min_tokens=i32(2000))
    request_id = f"cancel-{model}-{random.randrange(1 << 30)}"
    before = len(log_lines(triton, "cancelled after"))
    received = []
    for response in client.stream(model, inputs, request_id=request_id):
        received.append(response)
        if len(received) == 3:
            break  # leaving the generator cancels the gRPC call
    assert len(received) == 3 and not received[-1].final
    stopped = wait_for_new_log_lines(triton, "cancelled after", before)
    assert stopped and (request_id if model == "tensorrt_llm" else "request ensemble-") in stopped[0], stopped
    generated = int(stopped[0].split("cancelled after ")[1].split()[0])
    assert generated < 200  # stopped promptly, far from max_tokens
    (after,) = data(client.infer("ensemble", text_inputs("Hi", 2)))  # the engine is free again
    assert after.one("num_output_tokens") >= 1


def test_bad_inputs_are_triton_errors_naming_the_input(client: Client) -> None:
    def error(model: str, inputs: dict[str, np.ndarray]) -> str:
        (response,) = client.infer(model, inputs)
        assert response.error, response
        return response.error

    assert "max_tokens" in error("ensemble", text_inputs("Hi", 0))
    assert "max_tokens" in error("ensemble", text_inputs("Hi", 100_000))
    assert "text_input" in error("ensemble", text_inputs("hello " * 9000, 10))
    assert "max_tokens" in error("ensemble", {"text_input": text("Hi"), "max_tokens": scalar(5.0, np.float32)})
    assert "text_input" in error(
        "ensemble",
        {
            "text_input": np.array([[b"a"], [b"b"]], dtype=np.object_),
            "max_tokens": np.array([[4], [4]], dtype=np.int32),
        },
    )
    assert "top_p" in error("ensemble", text_inputs("Hi", 4, top_p=scalar(2.0, np.float32)))
    assert "beam_width" in error("ensemble", text_inputs("Hi", 4, beam_width=i32(2)))
    assert "not found" in error("no_such_model", text_inputs("Hi", 4))
    assert "input_ids" in error("tensorrt_llm", token_inputs([10**7], 4))
    assert "request_output_len" in error("tensorrt_llm", token_inputs([1, 2, 3], 9000))
    assert "stop_words_list" in error(
        "tensorrt_llm", token_inputs([1, 2], 4, stop_words_list=np.array([[[5, 6], [3, -1]]], dtype=np.int32))
    )
    (healthy,) = data(client.infer("ensemble", text_inputs("Hi", 2)))
    assert healthy.one("num_output_tokens") >= 1


def test_a_probe_on_a_generated_prefix_reuses_the_kv_cache(client: Client) -> None:
    prompt = tokenize(client, CHAT.format("Explain, step by step, how a steam engine works."))
    path = generate_ids(client, prompt, 48)
    probe = prompt + path + tokenize(client, "... Oh, I suddenly got the answer to the whole problem, Final Answer:")
    perf = {"return_perf_metrics": TRUE, "streaming": TRUE}

    def run(ids: list[int]) -> tuple[float, Response, list[int]]:
        started = time.monotonic()
        responses = client.infer("tensorrt_llm", token_inputs(ids, 20, **perf))
        return time.monotonic() - started, data(responses)[0], ids_of(responses)

    warm_s, warm, warm_ids = run(probe)
    fresh_first = random.randrange(20_000, 40_000)
    cold_s, cold, _ = run([fresh_first, *probe[1:]])  # same length, nothing cached can match
    print(
        f"\nprobe of {len(probe)} prompt tokens: warm {warm_s:.3f}s (cached {warm.one('num_cached_tokens')}), "
        f"cold {cold_s:.3f}s (cached {cold.one('num_cached_tokens')})"
    )
    assert warm.one("num_cached_tokens") >= len(prompt) + len(path) - 1
    assert warm.one("kv_cache_reused_blocks") == warm.one("num_cached_tokens") // 32 > 0
    assert cold.one("num_cached_tokens") == 0
    assert cold.one("kv_cache_reused_blocks") == 0
    assert cold.one("kv_cache_alloc_total_blocks") == cold.one("kv_cache_alloc_new_blocks") > 0
    assert warm.one("first_token_time_ns") >= warm.one("arrival_time_ns") > 0
    assert warm_ids  # the probe answered


def test_concurrent_probe_and_continuation_share_the_prefix(client: Client) -> None:
    prompt = tokenize(client, CHAT.format("Describe the water cycle in detail."))
    path = generate_ids(client, prompt, 32)
    suffix = tokenize(client, " Final Answer:")
    results: dict[str, list[Response]] = {}

    def run(name: str, ids: list[int]) -> None:
        results[name] = client.infer("tensorrt_llm", token_inputs(ids, 16, return_perf_metrics=TRUE))

    threads = [
        threading.Thread(target=run, args=("probe", prompt + path + suffix)),
        threading.Thread(target=run, args=("next", prompt + path)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in ("probe", "next"):
        (response,) = data(results[name])
        assert response.one("num_cached_tokens") >= len(prompt) + len(path) - 1, name


def test_chat_template_and_ids_are_published(client: Client, smollm2_gguf: Path) -> None:
    vocab = Vocab.from_file(smollm2_gguf)
    for model in ("ensemble", "tensorrt_llm_bls", "preprocessing"):
        parameters = client.model_config(model).config.parameters
        assert parameters["chat_template"].string_value == vocab.chat_template
    for model in ("ensemble", "tensorrt_llm"):
        parameters = client.model_config(model).config.parameters
        assert parameters["end_id"].string_value == str(vocab.eos_id)
        assert parameters["pad_id"].string_value == str(vocab.pad_id)
    config = client.model_config("tensorrt_llm").config
    assert config.max_batch_size > 0
    assert config.model_transaction_policy.decoupled


def test_more_concurrent_requests_than_sequences_all_complete(client: Client) -> None:
    results: dict[int, list[Response]] = {}

    def run(index: int) -> None:
        prompt = CHAT.format(f"Count from {index} to {index + 20}.")
        results[index] = client.infer("ensemble", text_inputs(prompt, 12, stream=TRUE, exclude_input_in_output=TRUE))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]  # the test server has 8 sequences
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(12))
    for responses in results.values():
        assert sum(int(r.one("num_output_tokens")) for r in data(responses)) > 0
