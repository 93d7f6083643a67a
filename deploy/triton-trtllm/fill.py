#!/usr/bin/env python3
"""Fill Certa's TensorRT-LLM model repository skeleton into a servable Triton model repository.

    python3 deploy/triton-trtllm/fill.py --out /models \
        --models-from TensorRT-LLM/triton_backend/all_models/inflight_batcher_llm \
        --chat-template-from /work/hf/Qwen2.5-7B-Instruct/tokenizer_config.json \
        engine_dir=/models/tensorrt_llm/1 tokenizer_dir=/models/tokenizer triton_max_batch_size=64

* Every `${key}` of the skeleton's config.pbtxt files is replaced by the KEY=VALUE given on the command line or by
  its default (DEFAULTS below); `engine_dir` and `tokenizer_dir` have none. An unknown key, a missing required
  key or a placeholder left over is an error, so a filled repository never carries `${...}`.
* `--models-from` is the matching TensorRT-LLM release's `triton_backend/all_models/inflight_batcher_llm`: its
  Python models (preprocessing, postprocessing, tensorrt_llm_bls with its lib/) are copied into the output. They
  are taken from the release at deploy time, never vendored here.
* `--chat-template-from` reads `chat_template` from a Hugging Face tokenizer_config.json and publishes it as the
  `chat_template` parameter of `preprocessing`, which Certa's `auto` prompt template uses.

Only the standard library is used, so it runs on a workstation or inside the Triton image alike.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

SKELETON = Path(__file__).resolve().parent / "model_repository"
MODELS = ("ensemble", "preprocessing", "tensorrt_llm", "postprocessing", "tensorrt_llm_bls")
REQUIRED = ("engine_dir", "tokenizer_dir")
DEFAULTS = {
    "triton_max_batch_size": "64",
    "batch_scheduler_policy": "guaranteed_no_evict",
    "kv_cache_free_gpu_mem_fraction": "0.9",
    "enable_chunked_context": "true",
    "cancellation_check_period_ms": "20",
    "preprocessing_instance_count": "4",
    "postprocessing_instance_count": "4",
    "bls_instance_count": "4",
}
# Python models copied from the TensorRT-LLM release (relative to its inflight_batcher_llm directory).
RELEASE_FILES = ("preprocessing/1/model.py", "postprocessing/1/model.py", "tensorrt_llm_bls/1/model.py")
RELEASE_DIRS = ("tensorrt_llm_bls/1/lib",)
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


class FillError(Exception):
    """The repository cannot be filled as asked; the message says why."""


def placeholders(skeleton: Path = SKELETON) -> set[str]:
    """Every `${key}` the skeleton uses."""
    found: set[str] = set()
    for model in MODELS:
        found |= set(PLACEHOLDER.findall((skeleton / model / "config.pbtxt").read_text()))
    return found


def parse_assignments(items: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FillError(f"expected KEY=VALUE, got {item!r}")
        values[key] = value
    return values


def resolve(given: dict[str, str], known: set[str]) -> dict[str, str]:
    unknown = sorted(set(given) - known)
    if unknown:
        raise FillError(f"unknown keys {unknown}; the skeleton uses {sorted(known)}")
    missing = [key for key in REQUIRED if not given.get(key)]
    if missing:
        raise FillError(f"missing required keys {missing} (e.g. engine_dir=/models/tensorrt_llm/1)")
    return {**DEFAULTS, **given}


def substitute(text: str, values: dict[str, str]) -> str:
    filled = PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), text)
    left = sorted(set(PLACEHOLDER.findall(filled)))
    if left:
        raise FillError(f"placeholders without a value: {left}")
    return filled


def pbtxt_string(value: str) -> str:
    """A protobuf text-format string literal (UTF-8 passes through; quotes, backslashes, controls are escaped)."""
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    out = []
    for char in value:
        if char in escapes:
            out.append(escapes[char])
        elif ord(char) < 32:
            out.append(f"\\{ord(char):03o}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def chat_template_from(tokenizer_config: Path) -> str:
    data = json.loads(tokenizer_config.read_text(encoding="utf-8"))
    template = data.get("chat_template")
    if isinstance(template, list):  # named templates: use the default one
        template = next((item.get("template") for item in template if item.get("name") == "default"), None)
    if not isinstance(template, str) or not template:
        raise FillError(f"{tokenizer_config} has no chat_template")
    return template


def copy_release_models(release: Path, out: Path) -> None:
    for relative in RELEASE_FILES:
        source = release / relative
        if not source.is_file():
            raise FillError(f"{source} not found: --models-from must be the release's inflight_batcher_llm directory")
        shutil.copy2(source, out / relative)
    for relative in RELEASE_DIRS:
        source = release / relative
        if not source.is_dir():
            raise FillError(f"{source} not found: --models-from must be the release's inflight_batcher_llm directory")
        shutil.copytree(source, out / relative, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))


def fill(out: Path, values: dict[str, str], release: Path | None = None, chat_template: str | None = None,
         skeleton: Path = SKELETON) -> Path:
    """Write the filled repository into `out` and return it."""
    resolved = resolve(values, placeholders(skeleton))
    for model in MODELS:
        text = substitute((skeleton / model / "config.pbtxt").read_text(), resolved)
        if model == "preprocessing" and chat_template is not None:
            literal = pbtxt_string(chat_template)
            text += ("\n# Published for Certa's `auto` prompt template.\n"
                     f'parameters {{ key: "chat_template", value: {{ string_value: {literal} }} }}\n')
        (out / model / "1").mkdir(parents=True, exist_ok=True)
        (out / model / "config.pbtxt").write_text(text)
    if release is not None:
        copy_release_models(release, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="model repository to write (created if missing)")
    parser.add_argument("--models-from", type=Path,
                        help="the release's triton_backend/all_models/inflight_batcher_llm")
    parser.add_argument("--chat-template-from", type=Path, help="a Hugging Face tokenizer_config.json")
    parser.add_argument("values", nargs="*", metavar="KEY=VALUE",
                        help=f"placeholder values; defaults: {', '.join(f'{k}={v}' for k, v in DEFAULTS.items())}")
    args = parser.parse_args(argv)
    try:
        template = chat_template_from(args.chat_template_from) if args.chat_template_from else None
        fill(args.out, parse_assignments(args.values), args.models_from, template)
    except (FillError, OSError, json.JSONDecodeError) as error:
        print(f"fill.py: {error}", file=sys.stderr)
        return 2
    if args.models_from is None:
        print("fill.py: no --models-from: copy the release's Python models in before serving", file=sys.stderr)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
