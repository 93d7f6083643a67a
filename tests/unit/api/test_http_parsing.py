"""The OpenAI-compatible door's pure parts: strict request parsing, the think split, the streamed-text gate."""

from __future__ import annotations

import pytest

from certa.api.http.catalogue import ModelCatalogue
from certa.api.http.errors import openai_param
from certa.api.http.parsing import load_body, parse_chat, parse_completion
from certa.api.http.streaming import EventText
from certa.api.http.thinking import ThinkSplitter, split
from certa.config import BackendSpec, HttpModel, Settings, load_settings
from certa.core.errors import InvalidArgument, NotFound
from certa.core.report import PathProgress, Resumed, TextDelta
from certa.core.types import ProbeRecord
from certa.v1 import reasoning_pb2 as pb

pytestmark = pytest.mark.unit

SETTINGS = Settings(backends=(BackendSpec("local", "triton://127.0.0.1:1"),), max_token_budget=4096)
CATALOGUE = ModelCatalogue(SETTINGS)
USER = [{"role": "user", "content": "What is 2 + 2?"}]


def refused(body: dict[str, object], chat: bool = True) -> str:
    with pytest.raises(InvalidArgument) as raised:
        (parse_chat if chat else parse_completion)(body, CATALOGUE)
    return raised.value.field


def test_default_model_per_backend_gets_early_exit_and_greedy_sampling() -> None:
    parsed = parse_chat({"model": "local", "messages": USER}, CATALOGUE)
    assert parsed.request.strategy.WhichOneof("kind") == "dynasor_cot"
    assert parsed.request.backend == "local" and parsed.request.sampling.temperature == 0.0
    assert parsed.single_question and not parsed.stream and parsed.request.token_budget == 0


def test_the_extension_sets_strategy_and_deadline_in_the_grpc_json_form() -> None:
    body = {
        "model": "local",
        "messages": USER,
        "max_tokens": 300,
        "temperature": 0.7,
        "seed": 5,
        "certa": {"strategy": {"majority_vote": {"n": 3, "plain": {}}}, "deadline": "30s"},
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    parsed = parse_chat(body, CATALOGUE)
    request = parsed.request
    assert request.strategy.majority_vote.n == 3 and request.deadline.seconds == 30
    assert request.token_budget == 300 and request.sampling.seed == 5
    assert parsed.stream and parsed.include_usage


def test_a_multi_sample_strategy_without_temperature_samples_at_openais_default() -> None:
    body = {"model": "local", "messages": USER, "certa": {"strategy": {"majority_vote": {"n": 3, "plain": {}}}}}
    assert parse_chat(body, CATALOGUE).request.sampling.temperature == 1.0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        ({"tools": [{"type": "function"}]}, "tools"),
        ({"tool_choice": "auto"}, "tool_choice"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        ({"stop": ["\n"]}, "stop"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"max_tokens": 5000}, "max_tokens"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"seed": True}, "seed"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"certa": {"budget": 3}}, "certa.budget"),
        ({"certa": {"strategy": {"dynasor_cot": {"bogus": 1}}}}, "certa.strategy.dynasor_cot.bogus"),
        ({"certa": {"strategy": {"dynasor_cot": {"chunkTokens": "many"}}}}, "certa.strategy.dynasor_cot.chunk_tokens"),
        ({"certa": {"deadline": "soon"}}, "certa.deadline"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content[0]"),
        ({"messages": [{"role": "user", "content": "x", "tool_calls": []}]}, "messages[0].tool_calls"),
        ({"messages": []}, "messages"),
        ({"model": ""}, "model"),
    ],
)
def test_unsupported_or_malformed_parameters_are_named(body: dict[str, object], param: str) -> None:
    assert refused({"model": "local", "messages": USER, **body}) == param


def test_explicit_nulls_mean_the_default() -> None:
    body = {"model": "local", "messages": USER, "stop": None, "tools": None, "n": 1, "logprobs": False}
    assert parse_chat(body, CATALOGUE).request.sampling.temperature == 0.0


def test_completions_take_one_string_prompt_as_is() -> None:
    parsed = parse_completion({"model": "local", "prompt": ["Once upon"]}, CATALOGUE)
    assert parsed.request.raw_prompt == "Once upon" and not parsed.messages
    assert refused({"model": "local", "prompt": [1, 2, 3]}, chat=False) == "prompt"
    assert refused({"model": "local", "prompt": "x", "echo": True}, chat=False) == "echo"
    assert refused({"model": "local", "prompt": "x", "best_of": 3}, chat=False) == "best_of"
    assert refused({"model": "local", "prompt": "x", "suffix": "y"}, chat=False) == "suffix"


def test_unknown_model_is_not_found_and_bad_json_is_named() -> None:
    with pytest.raises(NotFound):
        parse_chat({"model": "gpt-4o", "messages": USER}, CATALOGUE)
    for body in (b"{not json", b"[1]", b"\xff"):
        with pytest.raises(InvalidArgument) as raised:
            load_body(body)
        assert raised.value.field == "body"


def test_validator_fields_become_openai_parameters() -> None:
    assert openai_param("token_budget", "messages") == "max_tokens"
    assert openai_param("strategy.dynasor_cot.chunk_tokens", "messages") == "certa.strategy.dynasor_cot.chunk_tokens"
    assert openai_param("question", "prompt") == "prompt"
    assert openai_param("sampling.temperature", "messages") == "temperature"


def test_models_come_from_configuration_and_bad_strategies_stop_the_server() -> None:
    env = {
        "CERTA_BACKENDS": "local=triton://127.0.0.1:1",
        "CERTA_AUTH_DISABLED": "true",
        "CERTA_STORE": "memory",
        "CERTA_HTTP_PORT": "8080",
        "CERTA_HTTP_MODELS": '{"fast": {"backend": "local", "strategy": {"dynasor_cot": {"preset": "PRESET_HIGH"}},'
        ' "context_tokens": 1024}, "plain": {"backend": "local", "strategy": {"plain": {}}}}',
    }
    settings = load_settings(env)
    assert settings.http_listen_address == "0.0.0.0:8080"
    catalogue = ModelCatalogue(settings)
    assert [model.name for model in catalogue] == ["fast", "plain"]
    assert catalogue.get("fast").context_tokens == 1024 and catalogue.get("plain").context_tokens == 32768
    assert catalogue.get("fast").strategy.dynasor_cot.preset == pb.DynasorCot.PRESET_HIGH
    assert load_settings({**env, "CERTA_HTTP_PORT": "0"}).http_listen_address == ""
    with pytest.raises(InvalidArgument, match="CERTA_HTTP_MODELS"):
        load_settings({**env, "CERTA_HTTP_MODELS": '{"x": {"backend": "elsewhere"}}'})
    bad = Settings(
        backends=SETTINGS.backends,
        http_models=(HttpModel("x", "local", strategy_json='{"dynasor_cot": {"chunkTokens": 0}}'),),
    )
    with pytest.raises(InvalidArgument, match=r"CERTA_HTTP_MODELS\['x'\].strategy"):
        ModelCatalogue(bad)


@pytest.mark.parametrize("cut", [1, 3, 5, 9, 40])
def test_think_split_is_the_same_streamed_in_any_pieces(cut: int) -> None:
    text = "Let me see, 2 + 2 = 4.\n</think>\n\nThe answer is \\boxed{4}"
    splitter = ThinkSplitter(thinking=True)
    pieces = [piece for start in range(0, len(text), cut) for piece in splitter.feed(text[start : start + cut])]
    pieces += splitter.flush()
    reasoning = "".join(p.text for p in pieces if p.part == "reasoning")
    content = "".join(p.text for p in pieces if p.part == "content")
    assert reasoning.strip() == "Let me see, 2 + 2 = 4."
    assert content == "The answer is \\boxed{4}"
    assert split(text, thinking=True) == ("Let me see, 2 + 2 = 4.", "The answer is \\boxed{4}")


def test_think_split_of_other_texts() -> None:
    assert split("<think>hmm</think>4", thinking=False) == ("hmm", "4")
    assert split("just 4 < 5", thinking=False) == ("", "just 4 < 5")
    assert split("still thinking <", thinking=True) == ("still thinking <", "")


def test_dynasor_text_is_released_only_once_a_probe_passed_it() -> None:
    gate = EventText(pb.Strategy(dynasor_cot=pb.DynasorCot(preset=pb.DynasorCot.PRESET_MID)))
    assert gate.feed(TextDelta(0, "abc", 3)) == ""
    assert gate.feed(TextDelta(0, "def", 6)) == ""
    assert gate.feed(ProbeRecord(0, position_tokens=3, answer="1", confident=True, tokens=2)) == "abc"
    assert gate.feed(TextDelta(0, "ghi", 9)) == ""  # the in-flight chunk an early exit would cancel
    assert gate.feed(ProbeRecord(0, position_tokens=6, answer="1", confident=True, tokens=2)) == "def"
    assert gate.rest("abcdef\n\nanswer") == "\n\nanswer"


def test_preset_auto_streams_at_once_its_chunks_are_all_part_of_the_answer() -> None:
    for dynasor in (pb.DynasorCot(), pb.DynasorCot(preset=pb.DynasorCot.PRESET_AUTO)):
        gate = EventText(pb.Strategy(dynasor_cot=dynasor))
        assert gate.feed(TextDelta(0, "abc", 3)) == "abc"
        assert gate.rest("abc\n\nanswer") == "\n\nanswer"


def test_plain_text_streams_at_once_and_several_samples_wait_for_the_end() -> None:
    plain = EventText(pb.Strategy(plain=pb.PlainCot()))
    assert plain.feed(TextDelta(0, "ab", 2)) == "ab"
    assert plain.rest("abcd") == "cd"
    vote = EventText(pb.Strategy(majority_vote=pb.MajorityVote(n=3)))
    assert vote.feed(TextDelta(1, "ab", 2)) == "" and vote.rest("xyz") == "xyz"
    resumed = EventText(pb.Strategy(plain=pb.PlainCot()))
    resumed.feed(TextDelta(0, "abcd", 4))
    resumed.feed(Resumed(2, (PathProgress(0, text_chars=2, path_tokens=2),)))
    assert resumed.feed(TextDelta(0, "cdef", 6)) == "ef"
