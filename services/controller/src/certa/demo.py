"""`certa demo`: one GSM8K question solved with Dynasor-CoT, then without probing, and what probing saved."""

from __future__ import annotations

from pathlib import Path

from certa.console import STOP_NAMES, describe, stream_solve
from certa.core.answers import equivalent
from certa.datasets import load_questions
from certa_client import AsyncClient, Target, dynasor_cot, plain, solve_request


async def run_demo(target: Target, data: Path, index: int, budget: int) -> int:
    questions = load_questions(data, limit=1, offset=index)
    if not questions:
        raise ValueError(f"--index {index}: {data.name} has fewer questions")
    question = questions[0]
    print(f"Question {question.index} of {data.name}:\n  {question.question}\n  (gold answer: {question.gold})\n")
    async with AsyncClient(target) as client:
        print("== Dynasor-CoT (preset mid: 3 agreeing probes, 64-token chunks), greedy ==")
        probed = await stream_solve(client, solve_request(question.question, dynasor_cot(), token_budget=budget))
        print("\n" + describe(probed) + "\n")
        print("== The same question without probing (plain chain of thought), greedy ==")
        plain_cot = (await client.solve(solve_request(question.question, plain(), token_budget=budget))).result
        print(describe(plain_cot) + "\n")

    probed_total = probed.usage.path_tokens + probed.usage.probe_tokens
    saved = plain_cot.usage.path_tokens - probed_total
    print("== Summary ==")
    for name, result in (("dynasor-cot", probed), ("plain", plain_cot)):
        verdict = "correct" if equivalent(result.answer, question.gold) else "wrong"
        stop = STOP_NAMES[result.stop_reason]
        print(f"  {name:12s} answer {result.answer or '(none)':>8s} ({verdict}), stop {stop}, "
              f"path {result.usage.path_tokens} + probe {result.usage.probe_tokens} tokens")
    share = saved / plain_cot.usage.path_tokens if plain_cot.usage.path_tokens else 0.0
    print(f"  tokens saved by probing (path + probe tokens vs plain): {saved} ({share:.0%})")
    return 0
