"""`certa demo`: one GSM8K question solved with Dynasor-CoT (preset auto: exits calibrated to the model), then
without probing, and what probing saved or cost, with why the path exited or did not."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

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
        print("== Dynasor-CoT (preset auto: exits calibrated to the model's exit profile), greedy ==")
        auto = dynasor_cot("auto")
        probed = await stream_solve(client, solve_request(question.question, auto, token_budget=budget))
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
    print(f"  why: {probed.stop_detail}")
    return 0


def openai_examples(http_url: str) -> str:
    """How to ask the same server through its OpenAI-compatible endpoint (`http_url`, e.g. http://127.0.0.1:8080),
    with the name of its first model."""
    models = httpx.get(f"{http_url}/v1/models", headers={"Authorization": "Bearer local"}, timeout=10).json()
    model = models["data"][0]["id"]
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "What is 17 * 23?"}]})
    return (
        f"== The same server speaks the OpenAI API on {http_url}/v1 (model {model!r}) ==\n"
        f"  curl -s {http_url}/v1/chat/completions -H 'Content-Type: application/json' \\\n"
        f"       -H 'Authorization: Bearer local' -d '{body}'\n"
        f"  python -c 'from openai import OpenAI; c = OpenAI(base_url=\"{http_url}/v1\", api_key=\"local\"); "
        f"r = c.chat.completions.create(model=\"{model}\", "
        "messages=[{\"role\": \"user\", \"content\": \"What is 17 * 23?\"}]); "
        "print(r.choices[0].message.content, r.usage, r.model_extra[\"certa\"])'\n"
        "  (see docs/openai.md; the `certa` field of the response says how the strategy stopped)"
    )
