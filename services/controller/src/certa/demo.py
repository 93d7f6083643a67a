"""`certa demo`: one GSM8K question solved with Dynasor-CoT, then without probing, and what probing saved."""

from __future__ import annotations

from pathlib import Path

from certa.client import ClientTarget
from certa.console import STOP_NAMES, describe, stream_solve
from certa.core.answers import equivalent
from certa.datasets import load_questions
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc


def _request(question: str, strategy: pb.Strategy, budget: int) -> pb.SolveRequest:
    return pb.SolveRequest(question=question, strategy=strategy, token_budget=budget)


async def run_demo(target: ClientTarget, data: Path, index: int, budget: int) -> int:
    question = load_questions(data, limit=1, offset=index)[0]
    print(f"Question {question.index} of {data.name}:\n  {question.question}\n  (gold answer: {question.gold})\n")
    async with target.channel() as channel:
        stub = pb_grpc.ReasoningServiceStub(channel)
        print("== Dynasor-CoT (preset mid: 3 agreeing probes, 64-token chunks), greedy ==")
        probed = await stream_solve(stub, _request(question.question, pb.Strategy(dynasor_cot=pb.DynasorCot()), budget))
        print("\n" + describe(probed) + "\n")
        print("== The same question without probing (plain chain of thought), greedy ==")
        plain = (await stub.Solve(_request(question.question, pb.Strategy(plain=pb.PlainCot()), budget))).result
        print(describe(plain) + "\n")

    probed_total = probed.usage.path_tokens + probed.usage.probe_tokens
    saved = plain.usage.path_tokens - probed_total
    print("== Summary ==")
    for name, result in (("dynasor-cot", probed), ("plain", plain)):
        verdict = "correct" if equivalent(result.answer, question.gold) else "wrong"
        stop = STOP_NAMES[result.stop_reason]
        print(f"  {name:12s} answer {result.answer or '(none)':>8s} ({verdict}), stop {stop}, "
              f"path {result.usage.path_tokens} + probe {result.usage.probe_tokens} tokens")
    share = saved / plain.usage.path_tokens if plain.usage.path_tokens else 0.0
    print(f"  tokens saved by probing (path + probe tokens vs plain): {saved} ({share:.0%})")
    return 0
