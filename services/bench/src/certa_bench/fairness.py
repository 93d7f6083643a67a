"""`python -m certa_bench.load --fairness` (`make bench-fairness`): does one tenant's flood starve another tenant?

A real controller process (`certa serve`, real Redis, gRPC over loopback) in front of a backend with a fixed
capacity: the scripted backend (`scripted://?slots=N`) streaming the script at `--token-delay` seconds per token,
serving at most `--backend-slots` calls at once and queueing the rest first come, first served (as a model server
does). Tenant
`flood` sends `--flood` plain requests at once; a second later tenant `light` sends `--light` single requests, one
every `--light-interval` seconds, each on its own. Two runs:

* **fifo** — `CERTA_BACKEND_MAX_CONCURRENT_CALLS=0`: every call goes to the backend, which serves them in arrival
  order, so a light request waits behind the flood;
* **fair** — `CERTA_BACKEND_MAX_CONCURRENT_CALLS=<slots>`: the controller's weighted fair queue
  (`certa.runtime.fair_queue`) holds the calls and hands each freed slot to the tenant with the smallest share.

Printed: the light tenant's p50/p99/max latency and the flood's p50/p99 and duration, per run, and errors by code.
"Light" means below its fair share: with two tenants of weight 1, a tenant gets half of the backend's calls while
the other one floods, so the light tenant's rate must stay under half of what the backend serves (the defaults: one
call every 3 s against 4 slots of about 1 s each); a tenant sending more queues behind its own calls as well.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from certa.testing.certa_serve import CertaServe
from certa.testing.redis_server import RedisServer
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from certa_bench.load import percentile

PLAIN = pb.Strategy(plain=pb.PlainCot())


def fairness_controller(redis_url: str, work: Path, label: str, slots: int, fair: bool) -> CertaServe:
    """`certa serve` in front of the scripted backend serving `slots` calls at once, with the fair queue (`fair`)
    or without it (every call goes to the backend)."""
    settings = {"CERTA_LOG_LEVEL": "WARNING", "CERTA_BACKEND_MAX_CONCURRENT_CALLS": str(slots if fair else 0)}
    prefix = f"fair-{uuid.uuid4().hex[:8]}"
    log_path = work / f"fairness-{label}.log"
    return CertaServe(f"instant=scripted://?slots={slots}", redis_url, prefix, log_path, settings)


async def _timed(stub: pb_grpc.ReasoningServiceStub, tenant: str, question: str, timeout_s: float) -> tuple[str, float]:
    started = time.perf_counter()
    try:
        await stub.Solve(
            pb.SolveRequest(question=question, strategy=PLAIN),
            metadata=(("x-certa-tenant", tenant),),
            timeout=timeout_s,
        )
    except grpc.aio.AioRpcError as error:
        return error.code().name, time.perf_counter() - started
    return "OK", time.perf_counter() - started


async def one_run(redis: RedisServer, work: Path, args: argparse.Namespace, fair: bool) -> dict[str, Any]:
    label = "fair" if fair else "fifo"
    controller = fairness_controller(redis.url, work, label, args.backend_slots, fair)
    question = f"[[slow:{args.token_delay}]] How much does Janet make every day?"
    try:
        async with grpc.aio.insecure_channel(controller.address) as channel:
            stub = pb_grpc.ReasoningServiceStub(channel)
            started = time.perf_counter()
            flood = [
                asyncio.create_task(_timed(stub, "flood", f"F{i} {question}", args.timeout)) for i in range(args.flood)
            ]
            await asyncio.sleep(1.0)
            light = []
            for i in range(args.light):
                light.append(asyncio.create_task(_timed(stub, "light", f"L{i} {question}", args.timeout)))
                await asyncio.sleep(args.light_interval)
            light_done = await asyncio.gather(*light)
            flood_done = await asyncio.gather(*flood)
            duration_s = time.perf_counter() - started
    finally:
        controller.stop()

    def summary(outcomes: Sequence[tuple[str, float]]) -> dict[str, Any]:
        latencies = [latency for code, latency in outcomes if code == "OK"]
        codes: dict[str, int] = {}
        for code, _ in outcomes:
            codes[code] = codes.get(code, 0) + 1
        return {
            "codes": codes,
            "p50_s": percentile(latencies, 50),
            "p99_s": percentile(latencies, 99),
            "max_s": max(latencies, default=float("nan")),
        }

    return {"mode": label, "light": summary(light_done), "flood": summary(flood_done), "duration_s": duration_s}


def print_runs(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\nfairness: {args.flood} flood requests at once + {args.light} light requests (one every "
        f"{args.light_interval:g}s); backend: {args.backend_slots} slots, {args.token_delay:g}s/token, plain strategy"
    )
    print(f"{'mode':<6} {'light p50':>10} {'light p99':>10} {'light max':>10} {'flood p50':>10} {'flood p99':>10} "
          f"{'run':>7}  codes (light | flood)")
    for run in runs:
        light, flood = run["light"], run["flood"]
        print(
            f"{run['mode']:<6} {light['p50_s']:>9.2f}s {light['p99_s']:>9.2f}s {light['max_s']:>9.2f}s "
            f"{flood['p50_s']:>9.2f}s {flood['p99_s']:>9.2f}s {run['duration_s']:>6.1f}s  "
            f"{light['codes']} | {flood['codes']}"
        )


async def campaign(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    redis = RedisServer(work / "redis").start()
    try:
        return [await one_run(redis, work, args, fair) for fair in (False, True)]
    finally:
        redis.kill()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("fairness (--fairness)")
    group.add_argument("--flood", type=int, default=100, help="requests the flooding tenant sends at once")
    group.add_argument("--light", type=int, default=8, help="single requests of the light tenant")
    group.add_argument("--light-interval", type=float, default=3.0, help="seconds between light requests")
    group.add_argument("--backend-slots", type=int, default=4, help="calls the backend serves at once")
    group.add_argument("--token-delay", type=float, default=0.004, help="backend seconds per token")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="certa-bench-fairness-"))
    runs = asyncio.run(campaign(args, work))
    print_runs(runs, args)
    return {"work_dir": str(work), "fairness": runs}


if __name__ == "__main__":
    sys.exit("run it as: python -m certa_bench.load --fairness")
