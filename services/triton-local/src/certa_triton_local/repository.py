"""Writes the Triton model repository: one Python-backend model per TensorRT-LLM model name.

Each model directory gets a `config.pbtxt` generated from `contract.py` and a two-line `1/model.py` that imports
the implementation from this package, so the repository holds no code of its own. Model-config `parameters`
carry the GGUF path and the model's metadata; clients read `chat_template`, `end_id` and `pad_id` from the text
models (and `preprocessing`) with the ModelConfig RPC.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from certa_triton_local import contract
from certa_triton_local.vocab import Vocab

_IMPLEMENTATION = {
    contract.ENSEMBLE: "text",
    contract.BLS: "text",
    contract.PREPROCESSING: "preprocessing",
    contract.ENGINE: "tensorrt_llm",
    contract.POSTPROCESSING: "postprocessing",
}


@dataclass(frozen=True)
class EngineOptions:
    """Engine sizing; the defaults are the CLI's (`cli.KV_CELLS`, `cli.PARALLEL`, `cli.THREADS`)."""

    kv_cache_cells: int = 32768
    max_sequences: int = 16
    threads: int = 2


def pbtxt_string(value: str) -> str:
    """A protobuf text-format string literal; non-ASCII bytes become octal escapes so any template survives."""
    out = []
    for byte in value.encode("utf-8"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def config_text(model: contract.ModelContract, params: dict[str, str]) -> str:
    parts = [
        f'name: "{model.name}"',
        'backend: "python"',
        f"max_batch_size: {contract.MAX_BATCH_SIZE}",
    ]
    if model.decoupled:
        parts.append("model_transaction_policy {\n  decoupled: true\n}")
    parts.append("input [\n" + ",\n".join(t.pbtxt() for t in model.inputs) + "\n]")
    parts.append("output [\n" + ",\n".join(t.pbtxt() for t in model.outputs) + "\n]")
    parts.append("instance_group [\n  {\n    count: 1\n    kind: KIND_CPU\n  }\n]")
    for key, value in params.items():
        parts.append(f'parameters: {{\n  key: "{key}"\n  value: {{ string_value: {pbtxt_string(value)} }}\n}}')
    return "\n".join(parts) + "\n"


def model_parameters(gguf: Path, model_name: str, vocab: Vocab, engine: EngineOptions) -> dict[str, dict[str, str]]:
    """The `parameters` of every model, by model name."""
    common = {
        "model_path": str(gguf),
        "model_name": model_name,
        # what one sequence can hold: the engine gives each of its `max_sequences` slots an equal share of the cells
        "max_context": str(min(vocab.context_length, engine.kv_cache_cells // engine.max_sequences)),
        "end_id": str(vocab.eos_id),
        "pad_id": str(vocab.pad_id),
    }
    template = {"chat_template": vocab.chat_template or ""}
    text = {
        **common,
        **template,
        "exclude_input_in_output": "false",
        "skip_special_tokens": "true",
        "tensorrt_llm_model_name": contract.ENGINE,
    }
    return {
        contract.ENSEMBLE: text,
        contract.BLS: text,
        contract.PREPROCESSING: {**common, **template, "add_special_tokens": "true"},
        contract.ENGINE: {
            **common,
            "kv_cache_cells": str(engine.kv_cache_cells),
            "max_sequences": str(engine.max_sequences),
            "threads": str(engine.threads),
            "enable_kv_cache_reuse": "true",
            "tokens_per_block": str(contract.TOKENS_PER_BLOCK),
            "exclude_input_in_output": "false",
        },
        contract.POSTPROCESSING: {**common, "skip_special_tokens": "true"},
    }


def write_repository(out: Path, gguf: Path, model_name: str, engine: EngineOptions = EngineOptions()) -> Path:
    """Write (replacing) the five models under `out` for the GGUF at `gguf`; returns `out`."""
    gguf = gguf.resolve()
    params = model_parameters(gguf, model_name, Vocab.from_file(gguf), engine)
    out.mkdir(parents=True, exist_ok=True)
    for name in contract.ALL_MODELS:
        directory = out / name
        shutil.rmtree(directory, ignore_errors=True)
        (directory / "1").mkdir(parents=True)
        (directory / "config.pbtxt").write_text(config_text(contract.CONTRACTS[name], params[name]))
        module = _IMPLEMENTATION[name]
        (directory / "1" / "model.py").write_text(
            f'"""The `{name}` model of certa-triton-local (generated; see certa_triton_local.models.{module})."""\n\n'
            f"from certa_triton_local.models.{module} import TritonPythonModel  # noqa: F401\n"
        )
    return out
