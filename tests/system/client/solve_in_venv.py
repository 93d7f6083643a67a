"""Run inside a clean virtual environment holding only certa-client: every helper against a running controller.

    python solve_in_venv.py HOST:PORT    # prints one JSON object of what each call returned
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import uuid

import grpc

from certa_client import (
    AsyncClient,
    Client,
    Target,
    batch_request,
    code_name,
    dynasor_cot,
    partial_result,
    pb,
    plain,
    solve_request,
)

QUESTION = "[[confident-after:200]] Janet?"
STRATEGY = dynasor_cot(chunk_tokens=16, certainty_threshold=2, probe_tokens=10)


def blocking(address: str) -> dict:
    out: dict = {}
    with Client(Target(address)) as client:
        solved = client.solve(solve_request(QUESTION, STRATEGY))
        out["solve"] = {
            "answer": solved.result.answer,
            "stop": pb.StopReason.Name(solved.result.stop_reason),
            "probe_tokens": solved.result.usage.probe_tokens,
        }
        out["stream"] = [event.WhichOneof("event") for event in client.stream(solve_request(QUESTION, STRATEGY))]
        got = client.get(solved.request_id)
        out["get"] = {
            "same_answer": got.result.answer == solved.result.answer,
            "status": pb.SolveStatus.Name(got.status),
        }
        out["cancel_finished"] = client.cancel(solved.request_id).cancelled

        request_id = f"venv-cancel-{uuid.uuid4().hex}"  # new on every run: a known id joins the earlier request
        slow = solve_request("[[slow:0.05]] cancel me", plain(), request_id=request_id)
        finished: list = []
        thread = threading.Thread(target=lambda: finished.append(client.solve(slow)))
        thread.start()
        time.sleep(1.0)
        out["cancel_running"] = client.cancel(request_id).cancelled
        thread.join(30)
        out["cancelled_status"] = pb.SolveStatus.Name(finished[0].status)

        events = list(client.batch(batch_request([("a", "Janet?"), ("b", "Janet, again?")], samples=6)))
        out["batch"] = sorted(event.question.id for event in events if event.HasField("question"))
        out["batch_summary"] = events[-1].result.batch.questions
        try:
            client.solve(solve_request("Q", plain(), token_budget=10**9))
        except grpc.RpcError as error:
            out["invalid"] = [code_name(error), error.details()]
        try:
            client.solve(solve_request("[[fail-after:70]] Q", plain()))
        except grpc.RpcError as error:
            partial = partial_result(error)
            out["failed"] = [code_name(error), partial.usage.path_tokens if partial else None]
    return out


async def asynchronous(address: str) -> dict:
    async with AsyncClient(Target(address)) as client:
        solved = await client.solve(solve_request(QUESTION, STRATEGY))
        kinds = [event.WhichOneof("event") async for event in client.stream(solve_request(QUESTION, STRATEGY))]
        got = await client.get(solved.request_id)
        return {"answer": solved.result.answer, "stream": kinds, "get": got.request_id == solved.request_id}


if __name__ == "__main__":
    address = sys.argv[1]
    print(json.dumps({
        "python": list(sys.version_info[:2]),
        "blocking": blocking(address),
        "async": asyncio.run(asynchronous(address)),
    }))
