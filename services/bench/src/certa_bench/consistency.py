"""`certa bench consistency`: self-consistency strategies at equal budgets, live, against fixed-n sampling.

1. **Record.** One `SolveBatch` with uniform allocation and no stop rule draws `samples` independent samples for
   every question (sample k of a question uses seed + k). Their answers and tokens are written in the replay format
   (`certa_bench.replay`). Fixed-n self-consistency at n = 1, 2, 4, … is the vote over each question's first n
   samples: exactly what a fixed-n run with the same seeds draws, so the baseline costs no extra generation.
2. **Live contenders** at the same budgets: `SolveBatch` with the bandit allocator and the Certaindex rule at
   n × questions samples for each n of `budgets`, and per-question self-consistency with the Certaindex rule.
3. **Replay** of every allocator over the recorded answers at every budget (the same draws for every policy).

Prints a table and writes `consistency-bench.json` and two plots: accuracy against samples and against tokens.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from certa.core.answers import equivalent
from certa.datasets import Question
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from certa_bench import replay
from certa_client import Target

SEED = 1234
TEMPERATURE = 0.7
WARMUP = 2
QUESTIONS_AT_ONCE = 8  # per-question requests in flight at once (each runs waves of WARMUP samples)
DEADLINE_S = 3600  # a whole batch on a CPU model takes tens of minutes; the server's default (600 s) is too short


@dataclass(frozen=True)
class Point:
    """One contender at one budget: accuracy, samples and generated tokens over all questions."""

    contender: str
    budget_per_question: float
    correct: int
    questions: int
    samples: int
    tokens: int
    live: bool

    @property
    def accuracy(self) -> float:
        return self.correct / self.questions if self.questions else 0.0


def _batch_request(
    questions: Sequence[Question],
    samples_per_question: int,
    token_budget: int,
    *,
    bandit: bool,
    cap: int,
    deadline_s: int,
) -> pb.SolveBatchRequest:
    request = pb.SolveBatchRequest(
        questions=[pb.BatchQuestion(id=str(q.index), question=q.question) for q in questions],
        plain=pb.PlainCot(),
        sampling=pb.SamplingParams(temperature=TEMPERATURE, seed=SEED),
        token_budget=token_budget,
        budget=pb.BatchBudget(samples=samples_per_question * len(questions)),
        per_question_cap=cap,
        max_in_flight=16,
    )
    request.deadline.FromSeconds(deadline_s)
    if bandit:
        request.warmup = min(WARMUP, samples_per_question)
        request.stop_rule.certaindex.threshold = 0.7
        request.stop_rule.certaindex.min_samples = 2
    else:
        request.warmup = samples_per_question
        request.allocation = pb.ALLOCATION_UNIFORM
        request.stop_rule.fixed.SetInParent()
    return request


async def _run_batch(stub: pb_grpc.ReasoningServiceStub, request: pb.SolveBatchRequest) -> dict[str, pb.QuestionResult]:
    finished = {}
    async for event in stub.SolveBatch(request):
        if event.HasField("question"):
            if event.question.HasField("error"):  # its samples are cut short: comparing on them would mislead
                error = event.question.error
                raise RuntimeError(f"question {event.question.id} failed ({error.code}): {error.message}")
            finished[event.question.id] = event.question
            print(f"\r  {len(finished)}/{len(request.questions)} questions final", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return finished


def fixed_n_points(recorded: Sequence[replay.PooledQuestion], budgets: Sequence[int]) -> list[Point]:
    """Fixed-n self-consistency from the recorded samples: the vote over each question's first n."""
    pool = [replay.canonical(question) for question in recorded]
    rows = [replay.fixed_n(pool, n) for n in budgets]
    return [
        Point("fixed n", n, row.correct, row.questions, row.samples, row.tokens or 0, live=False)
        for n, row in zip(budgets, rows, strict=True)
    ]


def _point(name: str, per_question: float, results: dict[str, pb.QuestionResult], gold: dict[str, str]) -> Point:
    correct = sum(equivalent(result.result.answer, gold[qid]) for qid, result in results.items())
    samples = sum(len(result.result.samples) for result in results.values())
    tokens = sum(result.result.usage.path_tokens + result.result.usage.probe_tokens for result in results.values())
    return Point(name, per_question, correct, len(gold), samples, tokens, live=True)


async def _certaindex_per_question(
    stub: pb_grpc.ReasoningServiceStub, questions: Sequence[Question], cap: int, token_budget: int, deadline_s: int
) -> Point:
    """Self-consistency with the Certaindex rule, each question its own request (`QUESTIONS_AT_ONCE` at a time)."""
    strategy = pb.Strategy(
        self_consistency=pb.SelfConsistency(
            plain=pb.PlainCot(),
            max_samples=cap,
            wave_size=WARMUP,
            stop_rule=pb.StopRule(certaindex=pb.CertaindexRule(threshold=0.7, min_samples=WARMUP)),
        )
    )
    gate = asyncio.Semaphore(QUESTIONS_AT_ONCE)
    done = 0

    async def solve(question: Question) -> pb.SolveResult:
        nonlocal done
        request = pb.SolveRequest(
            question=question.question,
            strategy=strategy,
            token_budget=token_budget,
            sampling=pb.SamplingParams(temperature=TEMPERATURE, seed=SEED),
        )
        request.deadline.FromSeconds(deadline_s)
        async with gate:
            result = (await stub.Solve(request)).result
        done += 1
        print(f"\r  {done}/{len(questions)} questions", end="", file=sys.stderr, flush=True)
        return result

    results = await asyncio.gather(*(solve(question) for question in questions))
    print(file=sys.stderr)
    correct = sum(equivalent(result.answer, question.gold) for result, question in zip(results, questions, strict=True))
    samples = sum(len(result.samples) for result in results)
    tokens = sum(result.usage.path_tokens + result.usage.probe_tokens for result in results)
    return Point(
        "self-consistency + certaindex", samples / len(questions), correct, len(questions), samples, tokens, live=True
    )


async def run_bench(
    target: Target,
    questions: Sequence[Question],
    samples: int,
    budgets: Sequence[int],
    token_budget: int,
    record: Path,
    deadline_s: int = DEADLINE_S,
    per_question: bool = True,
) -> list[Point]:
    gold = {str(q.index): q.gold for q in questions}
    async with target.aio_channel() as channel:
        stub = pb_grpc.ReasoningServiceStub(channel)
        print(f"recording {samples} samples of {len(questions)} questions", file=sys.stderr)
        drawn = await _run_batch(
            stub, _batch_request(questions, samples, token_budget, bandit=False, cap=samples, deadline_s=deadline_s)
        )
        recorded = [
            replay.PooledQuestion(
                id=qid,
                gold=gold[qid],
                answers=tuple(sample.answer for sample in drawn[qid].result.samples),
                tokens=tuple(sample.path_tokens + sample.probe_tokens for sample in drawn[qid].result.samples),
            )
            for qid in gold
        ]
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text("".join(json.dumps(asdict(q)) + "\n" for q in recorded))
        points = fixed_n_points(recorded, budgets)
        for n in budgets:
            print(f"bandit + certaindex at {n} samples per question", file=sys.stderr)
            results = await _run_batch(
                stub, _batch_request(questions, n, token_budget, bandit=True, cap=samples, deadline_s=deadline_s)
            )
            points.append(_point("bandit + certaindex", n, results, gold))
            print(format_table(points[-1:]), file=sys.stderr)  # an hour-long run shows each figure as it comes
        if per_question:
            print("self-consistency + certaindex, per question", file=sys.stderr)
            points.append(await _certaindex_per_question(stub, questions, samples, token_budget, deadline_s))
            print(format_table(points[-1:]), file=sys.stderr)
    pool = replay.load_pool(record)
    for n in budgets:
        for row in replay.compare(pool, n, warmup=min(WARMUP, n), cap=samples):
            if row.contender != "uniform, fixed n":
                points.append(
                    Point(
                        f"replay: {row.contender}",
                        n,
                        row.correct,
                        row.questions,
                        row.samples,
                        row.tokens or 0,
                        live=False,
                    )
                )
    return points


def format_table(points: Sequence[Point]) -> str:
    header = f"{'contender':<34s} {'budget/q':>8s} {'accuracy':>8s} {'samples':>8s} {'tokens':>9s} {'live':>5s}"
    lines = [header, "-" * len(header)]
    for p in points:
        lines.append(
            f"{p.contender:<34s} {p.budget_per_question:>8.2f} {p.accuracy:>8.1%} {p.samples:>8d} {p.tokens:>9d} "
            f"{'yes' if p.live else 'no':>5s}"
        )
    return "\n".join(lines)


def _plot(points: Sequence[Point], out: Path, title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for axis, label in (("samples", "samples per question"), ("tokens", "generated tokens per question")):
        figure, axes = plt.subplots(figsize=(7.5, 4.5))
        for name in dict.fromkeys(p.contender for p in points):
            series = sorted((getattr(p, axis) / p.questions, p.accuracy * 100) for p in points if p.contender == name)
            axes.plot(*zip(*series, strict=True), marker="o", label=name)
        axes.set_xlabel(label)
        axes.set_ylabel("accuracy (%)")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
        figure.tight_layout()
        path = out / f"consistency-bench-{axis}.png"
        figure.savefig(path, dpi=120)
        plt.close(figure)
        paths.append(path)
    return paths


def write_report(points: Sequence[Point], out: Path, title: str) -> list[Path]:
    """Print the table; write the JSON report and the plots."""
    print(format_table(points))
    out.mkdir(parents=True, exist_ok=True)
    report = out / "consistency-bench.json"
    report.write_text(json.dumps({"title": title, "points": [asdict(p) for p in points]}, indent=2))
    return [report, *_plot(points, out, title)]


def run(
    target: Target,
    questions: Sequence[Question],
    samples: int,
    budgets: Sequence[int],
    token_budget: int,
    out: Path,
    title: str,
    per_question: bool = True,
) -> int:
    record = out / "consistency-samples.jsonl"
    points = asyncio.run(
        run_bench(target, questions, samples, budgets, token_budget, record, per_question=per_question)
    )
    for path in (record, *write_report(points, out, title)):
        print(f"wrote {path}")
    return 0
