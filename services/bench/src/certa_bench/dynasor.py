"""`certa bench`: plain chain of thought against Dynasor-CoT configurations, through a running controller.

Every configuration answers the same questions on the same backend with greedy decoding, so the plain run of a
question is exactly the path a Dynasor-CoT run of it follows when it is not stopped (the token-level Triton path
continues chunks exactly). That makes **wrong early exits** measurable: an exit whose answer differs from the answer
the plain run reached on that question.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from certa.console import STOP_NAMES
from certa.core.answers import equivalent
from certa.datasets import Question
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from certa_client import Target

PLAIN = "plain"


@dataclass(frozen=True)
class Config:
    name: str
    strategy: pb.Strategy
    description: str


@dataclass(frozen=True)
class Row:
    config: str
    question: int
    gold: str
    answer: str
    correct: bool
    stop_reason: str
    path_tokens: int
    probe_tokens: int
    prompt_tokens: int
    cached_prompt_tokens: int
    probes: int
    wall_s: float


@dataclass(frozen=True)
class Summary:
    config: str
    questions: int
    accuracy: float
    mean_path_tokens: float
    mean_probe_tokens: float
    mean_total_tokens: float
    saving_vs_plain: float
    early_exits: int
    wrong_early_exits: int
    mean_wall_s: float


def _preset(preset: int, settled: bool = False) -> pb.Strategy:
    return pb.Strategy(dynasor_cot=pb.DynasorCot(preset=preset, require_settled=settled))


REFERENCE_CONFIGS = (
    Config(PLAIN, pb.Strategy(plain=pb.PlainCot()), "plain chain of thought (the baseline)"),
    Config("mild", _preset(pb.DynasorCot.PRESET_MILD), "Dynasor-CoT, 8 probes agree, 64-token chunks"),
    Config("low", _preset(pb.DynasorCot.PRESET_LOW), "Dynasor-CoT, 5 probes agree, 64-token chunks"),
    Config("mid", _preset(pb.DynasorCot.PRESET_MID), "Dynasor-CoT, 3 probes agree, 64-token chunks"),
    Config("high", _preset(pb.DynasorCot.PRESET_HIGH), "Dynasor-CoT, 2 probes agree, 64-token chunks"),
    Config("crazy", _preset(pb.DynasorCot.PRESET_CRAZY), "Dynasor-CoT, 2 probes agree, 32-token chunks"),
)

CERTA_CONFIGS = (
    Config("mid+settled", _preset(pb.DynasorCot.PRESET_MID, settled=True), "mid with Certa's settled-path guard"),
    Config("high+settled", _preset(pb.DynasorCot.PRESET_HIGH, settled=True), "high with Certa's settled-path guard"),
    Config("crazy+settled", _preset(pb.DynasorCot.PRESET_CRAZY, settled=True),
           "crazy with Certa's settled-path guard"),
)

CONFIGS = REFERENCE_CONFIGS + CERTA_CONFIGS


async def _solve(stub: pb_grpc.ReasoningServiceStub, config: Config, question: Question, budget: int) -> Row:
    request = pb.SolveRequest(question=question.question, strategy=config.strategy, token_budget=budget)
    started = time.monotonic()
    response = await stub.Solve(request)
    result = response.result
    return Row(
        config=config.name,
        question=question.index,
        gold=question.gold,
        answer=result.answer,
        correct=equivalent(result.answer, question.gold),
        stop_reason=STOP_NAMES[result.stop_reason],
        path_tokens=result.usage.path_tokens,
        probe_tokens=result.usage.probe_tokens,
        prompt_tokens=result.usage.prompt_tokens,
        cached_prompt_tokens=result.usage.cached_prompt_tokens,
        probes=len(result.probes),
        wall_s=time.monotonic() - started,
    )


def load_rows(path: Path) -> dict[tuple[str, int], Row]:
    """Rows of an earlier report, by (configuration, question), to reuse instead of solving again."""
    report = json.loads(path.read_text())
    return {(row["config"], row["question"]): Row(**row) for row in report["rows"]}


async def run_bench(
    target: Target,
    questions: Sequence[Question],
    configs: Sequence[Config],
    budget: int,
    reuse: dict[tuple[str, int], Row] | None = None,
) -> list[Row]:
    """Solve every question with every configuration (greedy), reusing rows measured before when given."""
    reuse = reuse or {}
    rows: list[Row] = []
    total = len(questions) * len(configs)
    async with target.aio_channel() as channel:
        stub = pb_grpc.ReasoningServiceStub(channel)
        for question in questions:
            for config in configs:
                done = len(rows)
                bar = "#" * (30 * done // total)
                print(f"\r[{bar:<30s}] {done}/{total} question {question.index} {config.name:<12s}",
                      end="", file=sys.stderr, flush=True)
                earlier = reuse.get((config.name, question.index))
                rows.append(earlier if earlier is not None else await _solve(stub, config, question, budget))
    print(f"\r[{'#' * 30}] {total}/{total} done{' ' * 30}", file=sys.stderr)
    return rows


def summarise(rows: Sequence[Row], configs: Sequence[Config]) -> list[Summary]:
    plain = {row.question: row for row in rows if row.config == PLAIN}
    plain_total = sum(row.path_tokens for row in plain.values())
    summaries = []
    for config in configs:
        mine = [row for row in rows if row.config == config.name]
        if not mine:
            continue
        exits = [row for row in mine if row.stop_reason == "certain"]
        wrong = [
            row for row in exits if row.question in plain and not equivalent(row.answer, plain[row.question].answer)
        ]
        total = sum(row.path_tokens + row.probe_tokens for row in mine)
        summaries.append(
            Summary(
                config=config.name,
                questions=len(mine),
                accuracy=sum(row.correct for row in mine) / len(mine),
                mean_path_tokens=sum(row.path_tokens for row in mine) / len(mine),
                mean_probe_tokens=sum(row.probe_tokens for row in mine) / len(mine),
                mean_total_tokens=total / len(mine),
                saving_vs_plain=1 - total / plain_total if plain_total else 0.0,
                early_exits=len(exits),
                wrong_early_exits=len(wrong),
                mean_wall_s=sum(row.wall_s for row in mine) / len(mine),
            )
        )
    return summaries


def format_table(summaries: Sequence[Summary]) -> str:
    header = (f"{'config':<16s} {'n':>3s} {'acc':>6s} {'path':>7s} {'probe':>7s} {'total':>7s} "
              f"{'saving':>7s} {'exits':>5s} {'wrong':>5s} {'wall s':>7s}")
    lines = [header, "-" * len(header)]
    for s in summaries:
        lines.append(
            f"{s.config:<16s} {s.questions:>3d} {s.accuracy:>6.1%} {s.mean_path_tokens:>7.1f} "
            f"{s.mean_probe_tokens:>7.1f} {s.mean_total_tokens:>7.1f} {s.saving_vs_plain:>+7.1%} "
            f"{s.early_exits:>5d} {s.wrong_early_exits:>5d} {s.mean_wall_s:>7.2f}"
        )
    lines.append("saving = 1 - (path + probe tokens) / plain path tokens; wrong = early exits whose answer differs "
                 "from the plain run's answer on the same question")
    return "\n".join(lines)


def write_outputs(out: Path, rows: Sequence[Row], summaries: Sequence[Summary], meta: dict[str, object]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    report = {"meta": meta, "summary": [asdict(s) for s in summaries], "rows": [asdict(r) for r in rows]}
    json_path = out / "dynasor-bench.json"
    json_path.write_text(json.dumps(report, indent=2))
    png_path = out / "dynasor-bench.png"
    _plot(summaries, png_path, str(meta.get("title", "")))
    return [json_path, png_path]


def _plot(summaries: Sequence[Summary], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for s in summaries:
        marker = "s" if s.config == PLAIN else "o"
        axes.scatter(s.mean_total_tokens, s.accuracy * 100, marker=marker, s=60)
        axes.annotate(s.config, (s.mean_total_tokens, s.accuracy * 100), textcoords="offset points", xytext=(5, 5))
    axes.set_xlabel("mean generated tokens per question (path + probes)")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title or "accuracy vs tokens")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run(target: Target, questions: Sequence[Question], configs: Sequence[Config], budget: int, out: Path,
        meta: dict[str, object], reuse: Path | None = None) -> int:
    rows = asyncio.run(run_bench(target, questions, configs, budget, load_rows(reuse) if reuse else None))
    summaries = summarise(rows, configs)
    print(format_table(summaries))
    for path in write_outputs(out, rows, summaries, meta):
        print(f"wrote {path}")
    return 0
