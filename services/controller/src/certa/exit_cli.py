"""`certa record`, `certa replay-exit` and `certa calibrate`: the exit engine's offline loop.

    certa record --url triton://127.0.0.1:8001 --model-id qwen2.5-coder-0.5b --data gsm8k_test.jsonl \\
        --questions 60 --out recording.jsonl          # paths to the end, every chunk probed (needs a backend)
    certa replay-exit recording.jsonl [--half evaluation] [--profile p.json]   # policies side by side (seconds)
    certa calibrate recording.jsonl --model-id ... --alpha 0.05,0.1 --out p.json  # first half -> a profile
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from certa.core.exit.compare import REFERENCE_POLICIES, compare, format_rows, profile_policy
from certa.core.exit.profile import (
    CONSERVATIVE_DEFAULT,
    DEFAULT_DELTA,
    RecordingMismatch,
    calibrate_profile,
    profile_from_dict,
    profile_to_dict,
)
from certa.core.exit.trace import PathTrace
from certa.exit_recording import halves, load_recording

HALVES = ("all", "calibration", "evaluation")


def add_commands(commands: Any) -> None:
    record = commands.add_parser("record", help="record probe traces: paths run to the end, every chunk probed")
    record.add_argument("--url", required=True, help="backend URL, as in CERTA_BACKENDS (triton://..., openai+http://...)")
    record.add_argument("--model", default="", help="model name on the backend (default: the backend's)")
    record.add_argument("--model-id", required=True, help="what the backend serves, named in the recording")
    record.add_argument("--data", type=Path, required=True, help="questions as JSON lines (GSM8K format)")
    record.add_argument("--questions", type=int, default=60, help="how many questions (default 60)")
    record.add_argument("--offset", type=int, default=0, help="skip this many questions first")
    record.add_argument("--budget", type=int, default=512, help="path token budget per question")
    record.add_argument("--chunk-tokens", type=int, default=32, help="probe spacing (a multiple of it is replayable)")
    record.add_argument("--probe-tokens", type=int, default=20, help="tokens generated per probe (default 20)")
    record.add_argument("--out", type=Path, required=True, help="JSON lines; questions already in it are skipped")

    replay = commands.add_parser("replay-exit", help="replay exit policies on a recording (exact, no model)")
    replay.add_argument("recording", type=Path, help="a recording written by certa record (JSON lines)")
    replay.add_argument("--half", choices=HALVES, default="all", help="which half of the recording")
    replay.add_argument("--profile", type=Path, action="append", default=[],
                        help="an exit profile whose levels are replayed too (repeatable)")

    calibrate = commands.add_parser("calibrate", help="calibrate an exit profile on a recording's first half")
    calibrate.add_argument("recording", type=Path, help="a recording written by certa record (JSON lines)")
    calibrate.add_argument("--model-id", required=True, help="the model the profile is for (the recording's)")
    calibrate.add_argument("--template", default="", help="the prompt template id (default: the recording's)")
    calibrate.add_argument("--name", default="", help="profile name (default: the model id)")
    calibrate.add_argument("--alpha", default="0.05,0.1", help="risk levels, comma-separated, each in (0, 0.5]")
    calibrate.add_argument("--delta", type=float, default=DEFAULT_DELTA, help="1 - confidence of the bound")
    calibrate.add_argument("--half", choices=HALVES, default="calibration",
                           help="which half of the recording to calibrate on (default: the first)")
    calibrate.add_argument("--out", type=Path, required=True, help="the profile file to write (JSON)")


def _half(traces: list[PathTrace], half: str) -> list[PathTrace]:
    calibration, evaluation = halves(traces)
    return {"all": traces, "calibration": calibration, "evaluation": evaluation}[half]


def _record(args: argparse.Namespace) -> int:
    from certa.datasets import load_questions
    from certa.exit_recording import record

    questions = load_questions(args.data, limit=args.questions, offset=args.offset)
    recorded = asyncio.run(
        record(args.url, args.model_id, questions, args.out, budget=args.budget, chunk_tokens=args.chunk_tokens,
               probe_tokens=args.probe_tokens, model=args.model)
    )
    print(f"recorded {recorded} questions into {args.out}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    traces = _half(load_recording(args.recording), args.half)
    policies: list[tuple[str, Any]] = list(REFERENCE_POLICIES.items())
    policies.append(("default", profile_policy(CONSERVATIVE_DEFAULT, CONSERVATIVE_DEFAULT.default_alpha)))
    for path in args.profile:
        profile = profile_from_dict(json.loads(path.read_text()))
        policies += [(f"auto@{level.alpha:g}", profile_policy(profile, level.alpha)) for level in profile.levels]
    print(f"{args.recording.name}, {args.half} ({len(traces)} questions)")
    print(format_rows(compare(traces, policies)))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    traces = load_recording(args.recording)
    if not traces:
        print(f"certa calibrate: {args.recording} has no questions", file=sys.stderr)
        return 2
    alphas = [float(value) for value in args.alpha.split(",") if value.strip()]
    chosen = _half(traces, args.half)
    profile = calibrate_profile(
        chosen,
        name=args.name or args.model_id,
        model=args.model_id,
        template=args.template or traces[0].template,
        alphas=alphas,
        delta=args.delta,
        chunk_tokens=_chunk_tokens(traces),
        probe_tokens=max((probe.tokens for trace in traces for probe in trace.probes), default=20),
        recording=f"{args.recording.name}, {args.half} half: {len(chosen)} questions",
    )
    args.out.write_text(json.dumps(profile_to_dict(profile), indent=2) + "\n")
    for level in profile.levels:
        for kind, calibrated in (("confidence", level.confidence), ("agreement-only", level.agreement)):
            rule = calibrated.policy.describe() if calibrated.policy else "never exit"
            print(f"alpha {level.alpha:g} {kind}: {rule}; {calibrated.exits} exits, {calibrated.premature} premature "
                  f"of {calibrated.questions} (bound {calibrated.bound:.3f}), tokens {calibrated.tokens} vs plain "
                  f"{calibrated.plain_tokens}")
    print(f"wrote {args.out}")
    return 0


def _chunk_tokens(traces: list[PathTrace]) -> int:
    """The recording's probe spacing: the smallest position of a chunk-boundary probe."""
    return min((probe.position_tokens for trace in traces for probe in trace.probes), default=32)


def run(args: argparse.Namespace) -> int:
    try:
        if args.command == "record":
            return _record(args)
        if args.command == "replay-exit":
            return _replay(args)
        return _calibrate(args)
    except (RecordingMismatch, ValueError, OSError) as error:
        print(f"certa {args.command}: {error}", file=sys.stderr)
        return 2


COMMANDS = ("record", "replay-exit", "calibrate")
