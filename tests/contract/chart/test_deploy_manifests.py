"""deploy/: the TensorRT-LLM model repository skeleton (filled with fill.py, parsed as Triton model configs), the
KServe manifests, and the get-helm script."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tests.contract.chart.conftest import ROOT, helm_binary, render

pytestmark = pytest.mark.chart

TRTLLM = ROOT / "deploy" / "triton-trtllm"
MODELS = ("ensemble", "preprocessing", "tensorrt_llm", "postprocessing", "tensorrt_llm_bls")
REQUIRED = ["engine_dir=/models/tensorrt_llm/1", "tokenizer_dir=/models/tokenizer"]


def load_fill():
    spec = importlib.util.spec_from_file_location("certa_fill", TRTLLM / "fill.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def run_fill(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(TRTLLM / "fill.py"), *args], capture_output=True, text=True, timeout=60)


def parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def fake_release(root: Path) -> Path:
    """A stand-in for the release's inflight_batcher_llm directory (only the files fill.py copies)."""
    for relative in (
        "preprocessing/1/model.py",
        "postprocessing/1/model.py",
        "tensorrt_llm_bls/1/model.py",
        "tensorrt_llm_bls/1/lib/decode.py",
    ):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(f"# release file {relative}\n")
    return root


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, model_config_pb2.ModelConfig]:
    base = tmp_path_factory.mktemp("trtllm")
    tokenizer_config = base / "tokenizer_config.json"
    tokenizer_config.write_text(json.dumps({"chat_template": '{% for m in messages %}"{{ m.content }}"\n{% endfor %}'}))
    out = base / "models"
    result = run_fill(
        "--out",
        str(out),
        "--models-from",
        str(fake_release(base / "release")),
        "--chat-template-from",
        str(tokenizer_config),
        *REQUIRED,
        "triton_max_batch_size=32",
    )
    assert result.returncode == 0, result.stderr
    assert (out / "tensorrt_llm_bls" / "1" / "lib" / "decode.py").is_file()
    for model in MODELS:
        assert (out / model / "1").is_dir()
        assert "${" not in (out / model / "config.pbtxt").read_text()
    return {model: parse(out / model / "config.pbtxt") for model in MODELS}


def parameters(config: model_config_pb2.ModelConfig) -> dict[str, str]:
    return {key: value.string_value for key, value in config.parameters.items()}


def test_skeleton_has_the_tensorrt_llm_model_names_and_no_code() -> None:
    repository = TRTLLM / "model_repository"
    assert sorted(path.name for path in repository.iterdir()) == sorted(MODELS)
    assert sorted(
        path.relative_to(repository).as_posix() for path in repository.rglob("*") if path.is_file()
    ) == sorted(f"{model}/config.pbtxt" for model in MODELS)


def test_filled_configs_parse_and_keep_certa_choices(filled: dict[str, model_config_pb2.ModelConfig]) -> None:
    engine = filled["tensorrt_llm"]
    assert engine.backend == "tensorrtllm" and engine.max_batch_size == 32
    assert engine.model_transaction_policy.decoupled
    engine_parameters = parameters(engine)
    assert engine_parameters["enable_kv_cache_reuse"] == "true"
    assert engine_parameters["gpt_model_type"] == "inflight_fused_batching"
    assert engine_parameters["gpt_model_path"] == "/models/tensorrt_llm/1"
    assert filled["tensorrt_llm_bls"].model_transaction_policy.decoupled
    assert parameters(filled["tensorrt_llm_bls"])["accumulate_tokens"] == "false"
    assert parameters(filled["preprocessing"])["tokenizer_dir"] == "/models/tokenizer"
    assert parameters(filled["postprocessing"])["tokenizer_dir"] == "/models/tokenizer"
    assert filled["ensemble"].platform == "ensemble"
    template = '{% for m in messages %}"{{ m.content }}"\n{% endfor %}'
    assert parameters(filled["preprocessing"])["chat_template"] == template


def test_ensemble_wiring_is_consistent(filled: dict[str, model_config_pb2.ModelConfig]) -> None:
    """Every ensemble input feeds a step, every step input exists in its model with the same type, every
    intermediate tensor is produced before use, and every ensemble output is produced."""
    ensemble = filled["ensemble"]
    types = {tensor.name: tensor.data_type for tensor in ensemble.input}
    consumed: set[str] = set()
    for step in ensemble.ensemble_scheduling.step:
        model = filled[step.model_name]
        model_inputs = {tensor.name: tensor.data_type for tensor in model.input}
        model_outputs = {tensor.name: tensor.data_type for tensor in model.output}
        for model_input, tensor in step.input_map.items():
            assert model_input in model_inputs, f"{step.model_name} has no input {model_input}"
            assert tensor in types, f"{tensor} used by {step.model_name} before it is produced"
            assert types[tensor] == model_inputs[model_input], f"{tensor} -> {step.model_name}.{model_input}"
            consumed.add(tensor)
        for model_output, tensor in step.output_map.items():
            assert model_output in model_outputs, f"{step.model_name} has no output {model_output}"
            types[tensor] = model_outputs[model_output]
        required = {tensor.name for tensor in model.input if not tensor.optional}
        assert required <= set(step.input_map), f"{step.model_name} misses {required - set(step.input_map)}"
    assert {tensor.name for tensor in ensemble.input} <= consumed
    for output in ensemble.output:
        assert types.get(output.name) == output.data_type, output.name


def test_text_contract_matches_what_certa_sends(filled: dict[str, model_config_pb2.ModelConfig]) -> None:
    for model in ("ensemble", "tensorrt_llm_bls"):
        inputs = {tensor.name for tensor in filled[model].input}
        assert {
            "text_input",
            "max_tokens",
            "stream",
            "end_id",
            "pad_id",
            "stop_words",
            "temperature",
            "top_p",
            "top_k",
            "seed",
            "exclude_input_in_output",
            "return_num_input_tokens",
            "return_num_output_tokens",
        } <= inputs
        assert {"text_output", "num_input_tokens", "num_output_tokens"} <= {t.name for t in filled[model].output}
    engine_inputs = {tensor.name for tensor in filled["tensorrt_llm"].input}
    assert {"input_ids", "input_lengths", "request_output_len", "streaming", "stop_words_list"} <= engine_inputs
    assert {"output_ids", "sequence_length"} <= {tensor.name for tensor in filled["tensorrt_llm"].output}
    assert {"QUERY", "REQUEST_OUTPUT_LEN"} <= {tensor.name for tensor in filled["preprocessing"].input}
    assert {"TOKENS_BATCH", "SEQUENCE_LENGTH"} <= {tensor.name for tensor in filled["postprocessing"].input}


def test_fill_refuses_bad_keys(tmp_path: Path) -> None:
    result = run_fill("--out", str(tmp_path / "a"), "engine_dir=/e")
    assert result.returncode == 2 and "missing required keys ['tokenizer_dir']" in result.stderr
    result = run_fill("--out", str(tmp_path / "b"), *REQUIRED, "max_batch=8")
    assert result.returncode == 2 and "unknown keys ['max_batch']" in result.stderr
    result = run_fill("--out", str(tmp_path / "c"), "--models-from", str(tmp_path), *REQUIRED)
    assert result.returncode == 2 and "inflight_batcher_llm" in result.stderr


def test_fill_defaults_cover_every_optional_placeholder() -> None:
    fill = load_fill()
    assert fill.placeholders() == set(fill.DEFAULTS) | set(fill.REQUIRED)


def test_readme_documents_build_and_fill() -> None:
    readme = (TRTLLM / "README.md").read_text()
    for needle in (
        "trtllm-build",
        "--use_paged_context_fmha enable",
        "fill.py",
        "--models-from",
        "sed -i",
        "25.12-trtllm-python-py3",
        "not vendored",
    ):
        assert needle in readme, needle
    fill = load_fill()
    for key in fill.placeholders():
        assert f"`{key}`" in readme, key
        assert f"${{{key}}}" in readme, key


def test_kserve_runtime_and_inference_service() -> None:
    runtime = yaml.safe_load((ROOT / "deploy" / "kserve" / "servingruntime.yaml").read_text())
    service = yaml.safe_load((ROOT / "deploy" / "kserve" / "inferenceservice.yaml").read_text())
    assert (runtime["apiVersion"], runtime["kind"]) == ("serving.kserve.io/v1alpha1", "ServingRuntime")
    assert (service["apiVersion"], service["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert runtime["spec"]["protocolVersions"] == ["grpc-v2"]
    (container,) = runtime["spec"]["containers"]
    # The same Triton image as the chart's default.
    assert container["image"] == render().triton["spec"]["template"]["spec"]["containers"][0]["image"]
    assert "--model-repository=/mnt/models" in container["args"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["ports"] == [{"name": "h2c", "containerPort": 9000, "protocol": "TCP"}]
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] in {fmt["name"] for fmt in runtime["spec"]["supportedModelFormats"]}
    assert model["protocolVersion"] == "grpc-v2"
    assert model["storageUri"].startswith("pvc://")


def test_get_helm_is_idempotent_and_cached() -> None:
    first = helm_binary()
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "tools" / "get-helm.sh")], capture_output=True, text=True, timeout=10
    )
    assert result.returncode == 0 and result.stdout.strip() == first
    assert Path(first).is_file()
    version = subprocess.run([first, "version", "--short"], capture_output=True, text=True, timeout=10)
    assert version.stdout.startswith("v4.")
