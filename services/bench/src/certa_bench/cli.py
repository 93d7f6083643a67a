"""The `certa-bench` command: research benchmarks against a running controller, and replays that need no model.

`certa-bench dynasor` compares plain CoT with the Dynasor-CoT presets, `certa-bench consistency` self-consistency at
equal budgets, `certa-bench replay` the allocators and stop rules over pre-sampled answers; `python -m
certa_bench.load` is the load and fault campaign.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from certa.client import add_target_options, target_from_args
from certa.core.errors import InvalidArgument
from certa.datasets import GSM8K_TEST, load_questions
from certa_bench import consistency as consistency_bench
from certa_bench import dynasor as dynasor_bench
from certa_bench import exit as exit_bench
from certa_bench import online_replay, replay


def _dynasor(args: argparse.Namespace) -> int:
    configs = dynasor_bench.CONFIGS
    if args.configs:
        wanted = set(args.configs.split(","))
        unknown = wanted - {config.name for config in configs}
        if unknown:
            print(f"unknown configurations {sorted(unknown)}; known: {[c.name for c in configs]}", file=sys.stderr)
            return 2
        configs = tuple(config for config in configs if config.name in wanted)
    questions = load_questions(args.data, limit=args.questions, offset=args.offset)
    meta = {
        "dataset": args.data.name,
        "questions": len(questions),
        "offset": args.offset,
        "budget": args.budget,
        "decoding": "greedy",
        "configs": {config.name: config.description for config in configs},
        "title": f"{args.data.name}: {len(questions)} questions, greedy",
    }
    return dynasor_bench.run(
        target_from_args(args), questions, configs, args.budget, args.out, meta, args.reuse
    )


def _consistency(args: argparse.Namespace) -> int:
    questions = load_questions(args.data, limit=args.questions, offset=args.offset)
    budgets = sorted({int(n) for n in args.budgets.split(",")})
    if not budgets or budgets[0] < 1 or budgets[-1] > args.samples:
        print(f"--budgets must be in [1, --samples = {args.samples}], got {args.budgets}", file=sys.stderr)
        return 2
    title = f"{args.data.name}: {len(questions)} questions, temperature {consistency_bench.TEMPERATURE}"
    return consistency_bench.run(
        target_from_args(args),
        questions,
        args.samples,
        budgets,
        args.budget,
        args.out,
        title,
        per_question=not args.no_per_question,
    )


def _replay(args: argparse.Namespace) -> int:
    try:
        if args.file:
            pool = replay.load_pool(args.file, args.exact)
        else:
            pool = replay.synthetic_pool(args.synthetic, args.seed)
        if args.online:
            setup = online_replay.OnlineSetup(
                samples_per_question=args.budget,
                arrival_rate=args.arrival_rate,
                wave_size=args.wave_size,
                wave_s=args.wave_seconds,
                cap=args.cap,
                exploration=args.exploration,
            )
            print(replay.format_table(online_replay.compare_online(pool, setup), args.budget))
            print(
                f"online: one question every {1 / args.arrival_rate:g} s, waves of {args.wave_size} lasting "
                f"{args.wave_seconds:g} s; the pool refills {args.budget * args.arrival_rate:g} samples/s"
            )
            return 0
        rows = replay.compare(
            pool,
            args.budget,
            warmup=args.warmup,
            exploration=args.exploration,
            cap=args.cap,
            concurrency=args.concurrency,
        )
    except (InvalidArgument, ValueError, OSError) as error:
        print(f"certa-bench replay: {error}", file=sys.stderr)
        return 2
    print(replay.format_table(rows, args.budget))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="certa-bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser("dynasor", help="plain CoT vs Dynasor-CoT configurations on a dataset")
    add_target_options(bench)
    bench.add_argument("--data", type=Path, default=GSM8K_TEST, help="dataset as JSON lines")
    bench.add_argument("--questions", type=int, default=20)
    bench.add_argument("--offset", type=int, default=0, help="skip this many questions first")
    bench.add_argument("--budget", type=int, default=1024, help="path token budget per question")
    bench.add_argument("--configs", default="", help="comma-separated subset of configurations (default: all)")
    bench.add_argument("--out", type=Path, default=Path("bench-results"))
    bench.add_argument("--reuse", type=Path, help="an earlier dynasor-bench.json whose rows are reused, not re-run "
                       "(same model, budget and questions)")

    consistency = commands.add_parser(
        "consistency",
        help="self-consistency at equal budgets: fixed n vs bandit + Certaindex vs per-question Certaindex (live)",
    )
    add_target_options(consistency)
    consistency.add_argument("--data", type=Path, default=GSM8K_TEST, help="dataset as JSON lines")
    consistency.add_argument("--questions", type=int, default=20)
    consistency.add_argument("--offset", type=int, default=0)
    consistency.add_argument("--samples", type=int, default=8, help="samples recorded per question (the cap)")
    consistency.add_argument("--budgets", default="3,4",
                             help="samples per question at which to compare (above the warm-up of 2, or nothing is "
                                  "left to allocate)")
    consistency.add_argument("--budget", type=int, default=512,
                             help="path token budget per sample (the 0.5B model needs about 300 on GSM8K)")
    consistency.add_argument("--out", type=Path, default=Path("bench-results"))
    consistency.add_argument("--no-per-question", action="store_true",
                             help="skip per-question self-consistency (the slowest contender on a CPU model)")

    replay = commands.add_parser(
        "replay", help="bandit vs uniform allocation and the stop rules, replayed over pre-sampled answers (no model)"
    )
    pool = replay.add_mutually_exclusive_group(required=True)
    pool.add_argument("--file", type=Path, help="pre-sampled answers as JSON lines (format: certa_bench.replay)")
    pool.add_argument("--synthetic", type=int, metavar="N", help="a synthetic pool of N questions instead")
    replay.add_argument("--budget", type=int, default=8, help="samples per question on average (default 8)")
    replay.add_argument("--seed", type=int, default=0, help="seed of the synthetic pool")
    replay.add_argument("--warmup", type=int, default=3, help="bandit warm-up samples per question")
    replay.add_argument("--exploration", type=float, default=0.1, help="bandit exploration weight (beta)")
    replay.add_argument("--cap", type=int, default=40, help="most samples one question may get")
    replay.add_argument("--concurrency", type=int, default=1, help="samples in flight at once")
    replay.add_argument("--exact", action="store_true", help="answers in --file are canonical: compare as strings")
    replay.add_argument(
        "--online",
        action="store_true",
        help="questions arrive over time and share a budget pool (certa_bench.online_replay), instead of a batch",
    )
    replay.add_argument("--arrival-rate", type=float, default=1.0, help="--online: questions per second")
    replay.add_argument("--wave-size", type=int, default=1, help="--online: samples per wave")
    replay.add_argument("--wave-seconds", type=float, default=4.0, help="--online: how long one wave takes")

    exits = commands.add_parser("exit", help="exit engine: calibrate on a recording's first half, replay the second")
    exits.add_argument("recording", type=Path, help="a probe-trace recording (certa record)")
    exits.add_argument("--alpha", default="0.05,0.1", help="risk levels of preset auto, comma-separated")
    exits.add_argument("--delta", type=float, default=0.1, help="1 - confidence of the calibration's bound")
    exits.add_argument("--out", type=Path, default=Path("bench-results"))

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "dynasor":
        return _dynasor(args)
    if args.command == "consistency":
        return _consistency(args)
    if args.command == "exit":
        alphas = [float(value) for value in args.alpha.split(",") if value.strip()]
        return exit_bench.run(args.recording, alphas, args.delta, args.out)
    return _replay(args)


if __name__ == "__main__":
    sys.exit(main())
