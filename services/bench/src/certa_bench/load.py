"""`python -m certa_bench.load` (`make bench-load`): the load and fault campaign against a real controller.

Everything is real except the model: a real `redis-server` (started here, on a free loopback port, append-only
file with `appendfsync everysec` as the chart configures it), the real server (`certa serve`, configured by
`CERTA_*` variables) in **its own process**, so the load generator does not share its event loop or its core, and
clients speaking gRPC over loopback. The model is the scripted backend in its instant form
(`CERTA_BACKENDS=instant=scripted://?books=FILE`, `certa.testing.scripted_backend`): the deterministic script of
`certa.testing.scripted_model`, streamed one token per delta with no delay (it hands the event loop over once per
token, as a network stream does), so what is measured is the controller — validation, the strategy, checkpoints
and events in Redis, gRPC — not a model.

**Load.** `--requests` Dynasor-CoT requests (default 1,000), all in flight at once (`--concurrency`), each with
its own request id, over `--channels` gRPC connections. Reported:

* errors by status code, and requests lost: those whose record in Redis is missing, not `succeeded`, or whose
  stored result differs from the one the client received;
* token records lost: tokens the backend says it generated (it counts every token it streamed) minus the tokens
  the stored results account for (path + probe tokens); 0 means every generated token is on record. A request
  that failed mid-run and was resumed from its checkpoint (after a retry) has the calls that were in flight at the
  failure generated again: the backend counts them twice, the record once, and the difference shows here;
* p50/p99 latency of a whole request (client side, call to response);
* **added latency per round** = (request latency − backend time per request) / rounds, where a round is one
  backend call (a path chunk or a probe). Rounds per request = backend calls / requests (every request runs the
  same script, so the same number of rounds; the results' probe counts confirm it). Backend time is the time
  spent executing the backend's own code, measured inside the controller process around it (excluding the event
  loop hand-over, which is the controller's cost); for this instant backend about 0.1 ms per call (matching the
  prompt against the script).
  The figure is given for the loaded run (it includes queueing behind the other requests) and for a sequential
  baseline (one request at a time: the controller's own overhead per round);
* requests/s (wall clock) and **requests/s per controller core** = requests / CPU seconds the controller process
  used during the run (utime + stime from `/proc/PID/stat`); also Redis's CPU seconds and the cores the
  controller kept busy.

The load runs twice: with the default Redis pool (`CERTA_REDIS_POOL_SIZE=64`) and with a larger one
(`--redis-pool-sizes`). The errors this campaign found (README, "Load and faults") are fixed; what remains visible
under this saturation is a dozen "lease lost" warnings per run in the controller log, while every request still
finishes on its first attempt with its result recorded (real resumptions show as records with attempt > 1).

**Faults** (each answers: what the client saw, requests lost, token records lost; target none lost):

* *backend slow past the deadline* — requests whose model is slower than their 1 s deadline: the client gets
  DEADLINE_EXCEEDED with the partial result in the rich status details; the stored record is `failed` with the same
  partial; the backend's token count equals the stored partials' tokens;
* *Redis restarted mid-request* — Redis stopped and started again (its append-only file keeps the data) while
  requests run: every request succeeds, its journal holds one entry per chunk and probe, nothing is lost;
* *controller replica `kill -9`ed* — two `certa serve` processes share Redis and the scripted Triton server; the
  one running the requests is killed; clients get UNAVAILABLE, retry on the survivor with the same request id and
  get the complete result, identical to an undisturbed run (same text, same token counts: what the dead replica
  generated after its last checkpoint is generated again and counted once);
* *backend killed mid-stream* — the scripted Triton server is killed (SIGKILL) while the requests stream: clients
  get UNAVAILABLE with the partial result, the stored record is `failed` (never `succeeded`) with that partial,
  and its token count matches its text (scripted tokens are characters).

The last two need the scripted Triton model repository of the tests (`tests/fixtures/scripted_triton`, found from
the working directory, or `--scripted-triton`); without it they are skipped. Authentication refusals (missing,
wrong, expired, foreign credentials; another tenant's request id) are covered by `tests/system/api/test_auth.py` and
`tests/system/state/test_replicas.py`, and malformed requests by `tests/system/load/test_malformed_requests.py`.

Results: a table on stdout and `bench-results/load.json` (`--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_status import rpc_status
from redis.asyncio import Redis

from certa.api.grpc.mapping import report_to_proto
from certa.store.requests.codec import read_request
from certa.store.requests.port import RequestKey
from certa.store.requests.values import stored_report
from certa.testing.certa_serve import CertaServe
from certa.testing.redis_server import RedisServer
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from certa_bench.profile import Profiler

TENANT = "default"
# The load's strategy: the default Dynasor-CoT preset (threshold 3) with 32-token chunks over the 234-token script:
# 8 chunks and 7 probes (the scripted probes never agree three times in a row, so the path runs to its end), i.e.
# 15 rounds and 282 generated tokens per request.
LOAD_STRATEGY = pb.Strategy(dynasor_cot=pb.DynasorCot(preset=pb.DynasorCot.PRESET_MID, chunk_tokens=32))
# The faults' strategy: a probe after every 16 tokens and no early exit, so a request runs the whole script and
# its journal length is known (one entry per chunk and per probe).
LONG_STRATEGY = pb.Strategy(
    dynasor_cot=pb.DynasorCot(chunk_tokens=16, certainty_threshold=2, probe_tokens=8, disable_early_exit=True)
)
LONG_CHUNK = 16
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- processes ----------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from `/proc/PID/stat`."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # fields 14 and 15 of proc(5): utime, stime


class ScriptedController(CertaServe):
    """`certa serve` with the instant scripted model (`CERTA_BACKENDS=instant=scripted://?books=FILE`); on SIGTERM
    it drains, stops, and the backend writes its books to FILE (`books`)."""

    def __init__(self, redis_url: str, prefix: str, work: Path, settings: dict[str, str] | None = None) -> None:
        self.books_path = work / f"{prefix}-backend.json"
        backends = f"instant=scripted://?books={self.books_path}"
        log_path = work / f"{prefix}-controller.log"
        super().__init__(backends, redis_url, prefix, log_path, {"CERTA_LOG_LEVEL": "WARNING", **(settings or {})})

    def books(self) -> dict[str, float]:
        """What the backend did (calls, tokens, busy_s), as it wrote it when the controller stopped."""
        return json.loads(self.books_path.read_text())


def triton_replica(name: str, triton_url: str, redis_url: str, prefix: str, work: Path) -> CertaServe:
    """`certa serve` in front of a Triton server, configured like a pod of the chart (short lease for the test)."""
    settings = {"CERTA_REPLICA_ID": name, "CERTA_LEASE_S": "1.5", "CERTA_SWEEP_INTERVAL_S": "0.3"}
    return CertaServe(f"trtllm=triton://{triton_url}", redis_url, prefix, work / f"{prefix}-{name}.log", settings)


# -- clients ------------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one client saw."""

    request_id: str
    code: str
    latency_s: float
    response: pb.SolveResponse | None = None
    partial: pb.SolveResult | None = None  # from the rich status details of an error
    details: str = ""
    streamed_chars: int = 0  # text the client received as `text` events (SolveStream)


def partial_of(error: grpc.aio.AioRpcError) -> pb.SolveResult | None:
    status = rpc_status.from_call(error)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(pb.SolveResult.DESCRIPTOR):
            result = pb.SolveResult()
            detail.Unpack(result)
            return result
    return None


def failed(request_id: str, error: grpc.aio.AioRpcError, started: float, streamed: int = 0) -> Outcome:
    return Outcome(
        request_id,
        error.code().name,
        time.perf_counter() - started,
        partial=partial_of(error),
        details=error.details() or "",
        streamed_chars=streamed,
    )


async def solve(stub: pb_grpc.ReasoningServiceStub, request: pb.SolveRequest, timeout_s: float) -> Outcome:
    started = time.perf_counter()
    try:
        response = await stub.Solve(request, timeout=timeout_s)
    except grpc.aio.AioRpcError as error:
        return failed(request.request_id, error, started)
    return Outcome(request.request_id, "OK", time.perf_counter() - started, response=response)


async def run_wave(
    addresses: Sequence[str],
    requests: Sequence[pb.SolveRequest],
    *,
    concurrency: int | None = None,
    channels: int = 8,
    timeout_s: float = 300.0,
) -> list[Outcome]:
    """Send `requests` with `Solve`, at most `concurrency` in flight (all by default), over `channels`
    connections spread over `addresses`; what each client saw, in order."""
    limit = asyncio.Semaphore(concurrency or len(requests))
    opened = [grpc.aio.insecure_channel(addresses[i % len(addresses)]) for i in range(max(channels, 1))]
    stubs = [pb_grpc.ReasoningServiceStub(channel) for channel in opened]

    async def one(index: int, request: pb.SolveRequest) -> Outcome:
        async with limit:
            return await solve(stubs[index % len(stubs)], request, timeout_s)

    try:
        return list(await asyncio.gather(*(one(i, request) for i, request in enumerate(requests))))
    finally:
        for channel in opened:
            await channel.close()


# -- what Redis holds ---------------------------------------------------------------------------------------------


@dataclass
class Stored:
    status: str  # running | succeeded | failed | cancelled | missing
    result: pb.SolveResult | None
    journal: int
    attempt: int


async def read_stored(
    redis_url: str, prefix: str, request_ids: Sequence[str], tenant: str = TENANT
) -> dict[str, Stored]:
    """Each request's record as the store keeps it (`certa.store.requests.redis` layout), read straight from Redis."""
    client = Redis.from_url(redis_url)
    try:
        stored: dict[str, Stored] = {}
        for request_id in request_ids:
            base = f"{prefix}:{{{tenant}/{request_id}}}"
            meta = await client.hgetall(f"{base}:meta")
            if not meta:
                stored[request_id] = Stored("missing", None, 0, 0)
                continue
            record = read_request(f"{base}:meta", RequestKey(tenant, request_id), meta, owner="")
            report = stored_report(record)
            stored[request_id] = Stored(
                status=record.status.value,
                result=report_to_proto(report) if report is not None else None,
                # a finished request's journal is dropped; the finish keeps its length
                journal=int(meta.get(b"journal_entries") or await client.llen(f"{base}:journal")),
                attempt=record.attempt,
            )
        return stored
    finally:
        await client.aclose()


def tokens_of(result: pb.SolveResult | None) -> int:
    return 0 if result is None else result.usage.path_tokens + result.usage.probe_tokens


def codes(outcomes: Sequence[Outcome]) -> dict[str, int]:
    return dict(Counter(outcome.code for outcome in outcomes).most_common())


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100])."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def lost_succeeded(outcomes: Sequence[Outcome], stored: dict[str, Stored]) -> list[str]:
    """Requests whose stored record is not the successful result its client received."""
    lost = []
    for outcome in outcomes:
        record = stored[outcome.request_id]
        if (
            outcome.response is None
            or record.status != "succeeded"
            or record.result is None
            or record.result != outcome.response.result
        ):
            lost.append(outcome.request_id)
    return lost


def load_request(run: str, index: int, strategy: pb.Strategy = LOAD_STRATEGY, question: str = "") -> pb.SolveRequest:
    return pb.SolveRequest(
        question=question or f"Q{index}: How much does Janet make every day?",
        strategy=strategy,
        request_id=f"{run}-{index}",
    )


# -- the load -----------------------------------------------------------------------------------------------------


async def load_run(redis: RedisServer, work: Path, args: argparse.Namespace, pool_size: int) -> dict[str, Any]:
    """One measured run against a fresh controller whose Redis pool has `pool_size` connections."""
    prefix = f"load-{uuid.uuid4().hex[:8]}"
    controller = ScriptedController(
        redis.url,
        prefix,
        work,
        {
            # Admission must not refuse the load (RESOURCE_EXHAUSTED above the limit is by design).
            "CERTA_MAX_CONCURRENT_REQUESTS": str(max(256, args.concurrency + args.warmup)),
            "CERTA_REDIS_POOL_SIZE": str(pool_size),
            **dict(item.split("=", 1) for item in args.controller_env),
        },
    )
    try:
        address = [controller.address]
        warm = await run_wave(address, [load_request("warm", i) for i in range(args.warmup)], channels=args.channels)
        baseline = []
        for i in range(args.baseline):  # one request at a time
            baseline += await run_wave(address, [load_request("base", i)], channels=1)
        requests = [load_request("load", i) for i in range(args.requests)]
        cpu_before, redis_before = cpu_seconds(controller.process.pid), cpu_seconds(redis.pid)
        own_before = resource.getrusage(resource.RUSAGE_SELF)
        profile = Path(args.profile.format(pool=pool_size)) if args.profile else None
        profiler = Profiler(controller.process.pid, profile) if profile is not None else None
        started = time.perf_counter()
        outcomes = await run_wave(
            address, requests, concurrency=args.concurrency, channels=args.channels, timeout_s=args.timeout
        )
        wall_s = time.perf_counter() - started
        if profiler is not None:
            profiler.stop()
        cpu_s = cpu_seconds(controller.process.pid) - cpu_before
        redis_cpu_s = cpu_seconds(redis.pid) - redis_before
        own_after = resource.getrusage(resource.RUSAGE_SELF)
        # A client whose request failed retries it once with the same id (it attaches, or resumes the request
        # from its checkpoint), a few at a time.
        failed_requests = [requests[i] for i, outcome in enumerate(outcomes) if outcome.code != "OK"]
        retried = await run_wave(address, failed_requests, concurrency=16, channels=1, timeout_s=args.timeout)
    finally:
        controller.stop()
    books = controller.books()
    leases_lost = controller.log().count("lease lost")
    final = {outcome.request_id: outcome for outcome in [*warm, *baseline, *outcomes, *retried] if outcome.code == "OK"}
    final.update({o.request_id: o for o in [*warm, *baseline, *outcomes, *retried] if o.request_id not in final})
    stored = await read_stored(redis.url, prefix, list(final))
    lost = lost_succeeded(list(final.values()), stored)
    recorded_tokens = sum(tokens_of(record.result) for record in stored.values())
    everything = [*warm, *baseline, *outcomes]
    rounds = books["calls"] / len(everything)
    probes = Counter(len(o.response.result.probes) for o in final.values() if o.response is not None)
    backend_s = books["busy_s"] / len(everything)

    def added(sample: Sequence[Outcome]) -> dict[str, float]:
        per_round = [(outcome.latency_s - backend_s) / rounds for outcome in sample if outcome.code == "OK"]
        return {"p50_ms": 1000 * percentile(per_round, 50), "p99_ms": 1000 * percentile(per_round, 99)}

    latencies = [outcome.latency_s for outcome in outcomes if outcome.code == "OK"]
    return {
        "redis_pool_size": pool_size,
        "requests": len(outcomes),
        "concurrency": args.concurrency,
        "channels": args.channels,
        "strategy": "dynasor_cot (preset mid, chunk 32)",
        "codes": codes(outcomes),
        "errors": sum(outcome.code != "OK" for outcome in outcomes),
        "error_details": dict(Counter(o.details[:120] for o in outcomes if o.code != "OK").most_common(5)),
        "warmup_and_baseline_errors": sum(outcome.code != "OK" for outcome in [*warm, *baseline]),
        "retry_codes": codes(retried),
        "requests_lost": len(lost),
        "lost_ids": lost[:20],
        "resumed": sum(record.attempt > 1 for record in stored.values()),
        "leases_lost": leases_lost,
        "backend_tokens": books["tokens"],
        "recorded_tokens": recorded_tokens,
        "token_records_lost": books["tokens"] - recorded_tokens,
        "rounds_per_request": rounds,
        "probes_per_request": dict(probes),
        "backend_time_per_request_ms": 1000 * backend_s,
        "latency_p50_s": percentile(latencies, 50),
        "latency_p99_s": percentile(latencies, 99),
        "latency_max_s": max(latencies, default=float("nan")),
        "added_latency_per_round_loaded": added(outcomes),
        "baseline_requests": len(baseline),
        "baseline_latency_p50_ms": 1000 * percentile([o.latency_s for o in baseline if o.code == "OK"], 50),
        "added_latency_per_round_sequential": added(baseline),
        "wall_s": wall_s,
        "requests_per_s": len(outcomes) / wall_s,
        "controller_cpu_s": cpu_s,
        "controller_cores_busy": cpu_s / wall_s,
        "requests_per_s_per_controller_core": len(outcomes) / cpu_s if cpu_s else float("nan"),
        "redis_cpu_s": redis_cpu_s,
        "load_generator_cpu_s": (own_after.ru_utime + own_after.ru_stime) - (own_before.ru_utime + own_before.ru_stime),
        "cpus": os.cpu_count(),
    }


# -- faults -------------------------------------------------------------------------------------------------------


def scenario(name: str, client_saw: dict[str, int], lost: int, tokens_lost: int, **more: Any) -> dict[str, Any]:
    return {
        "scenario": name,
        "client_saw": client_saw,
        "requests_lost": lost,
        "token_records_lost": tokens_lost,
        **more,
    }


async def deadline_scenario(redis: RedisServer, work: Path, count: int) -> dict[str, Any]:
    """A model slower than the deadline: DEADLINE_EXCEEDED with the partial, stored `failed` with the same."""
    prefix = f"deadline-{uuid.uuid4().hex[:8]}"
    controller = ScriptedController(redis.url, prefix, work)
    try:
        requests = []
        for i in range(count):
            request = load_request("slow", i, LONG_STRATEGY, f"[[slow:0.02]] Q{i}: How much does Janet make?")
            request.deadline.FromMilliseconds(1000)
            requests.append(request)
        outcomes = await run_wave([controller.address], requests, timeout_s=30)
    finally:
        controller.stop()
    books = controller.books()
    stored = await read_stored(redis.url, prefix, [outcome.request_id for outcome in outcomes])
    lost = [
        outcome.request_id
        for outcome in outcomes
        if stored[outcome.request_id].status != "failed"
        or outcome.partial is None
        or stored[outcome.request_id].result != outcome.partial
    ]
    recorded = sum(tokens_of(record.result) for record in stored.values())
    return scenario(
        "backend slow past the deadline (1 s)",
        codes(outcomes),
        len(lost),
        books["tokens"] - recorded,
        with_partial=sum(outcome.partial is not None and outcome.partial.usage.path_tokens > 0 for outcome in outcomes),
        stored_status=dict(Counter(record.status for record in stored.values())),
        expected="DEADLINE_EXCEEDED with the partial result; stored failed with it",
        passed=not lost and set(codes(outcomes)) == {"DEADLINE_EXCEEDED"} and books["tokens"] == recorded,
    )


async def redis_restart_scenario(redis: RedisServer, work: Path, count: int) -> dict[str, Any]:
    """Redis restarted while requests run: all succeed, journals complete, every token on record."""
    prefix = f"restart-{uuid.uuid4().hex[:8]}"
    controller = ScriptedController(redis.url, prefix, work)
    try:
        requests = [
            load_request("restart", i, LONG_STRATEGY, f"[[slow:0.01]] Q{i}: How much does Janet make?")
            for i in range(count)
        ]
        wave = asyncio.ensure_future(run_wave([controller.address], requests, timeout_s=60))
        await asyncio.sleep(1.0)
        restarted = time.perf_counter()
        await asyncio.to_thread(redis.restart)
        down_s = time.perf_counter() - restarted
        outcomes = await wave
    finally:
        controller.stop()
    books = controller.books()
    stored = await read_stored(redis.url, prefix, [outcome.request_id for outcome in outcomes])
    lost = lost_succeeded(outcomes, stored)
    incomplete = [
        request_id
        for request_id, record in stored.items()
        if record.result is None
        or record.journal != -(-record.result.usage.path_tokens // LONG_CHUNK) + len(record.result.probes)
    ]
    recorded = sum(tokens_of(record.result) for record in stored.values())
    return scenario(
        "Redis restarted mid-request",
        codes(outcomes),
        len(set(lost) | set(incomplete)),
        books["tokens"] - recorded,
        redis_down_s=round(down_s, 3),
        journals_incomplete=len(incomplete),
        expected="every request OK; journals complete",
        passed=not lost and not incomplete and books["tokens"] == recorded,
    )


async def stream_until(
    stub: pb_grpc.ReasoningServiceStub, request: pb.SolveRequest, probes: int, reached: asyncio.Event | None = None
) -> tuple[Outcome, asyncio.Future[Outcome]]:
    """Start `SolveStream`; return once `probes` probe events arrived, with the rest of the stream as a future."""
    started = time.perf_counter()
    call = stub.SolveStream(request, timeout=60)
    streamed = 0
    seen = 0
    first_part = asyncio.get_running_loop().create_future()

    async def consume() -> Outcome:
        nonlocal streamed, seen
        try:
            async for event in call:
                if event.HasField("text"):
                    streamed += len(event.text.text)
                elif event.HasField("resumed"):
                    streamed = event.resumed.paths[0].text_chars if event.resumed.paths else 0
                elif event.HasField("probe"):
                    seen += 1
                    if seen == probes and not first_part.done():
                        first_part.set_result(None)
                elif event.HasField("result"):
                    response = pb.SolveResponse(request_id=request.request_id, result=event.result)
                    return Outcome(
                        request.request_id, "OK", time.perf_counter() - started, response, streamed_chars=streamed
                    )
            return Outcome(request.request_id, "NO_RESULT", time.perf_counter() - started, streamed_chars=streamed)
        except grpc.aio.AioRpcError as error:
            return failed(request.request_id, error, started, streamed)
        finally:
            if not first_part.done():
                first_part.set_result(None)

    rest = asyncio.ensure_future(consume())
    await first_part
    return Outcome(request.request_id, "STREAMING", time.perf_counter() - started), rest


async def interrupt_streams(
    address: str, requests: Sequence[pb.SolveRequest], interrupt: Callable[[], None]
) -> list[Outcome]:
    """Stream `requests` from the controller at `address` until each has seen 3 probes, `interrupt` (kill something)
    and return how each stream ended."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.ReasoningServiceStub(channel)
        started = await asyncio.gather(*(stream_until(stub, request, probes=3) for request in requests))
        interrupt()
        return [await rest for _, rest in started]


async def replica_kill_scenario(triton_url: str, redis: RedisServer, work: Path, count: int) -> dict[str, Any]:
    """`kill -9` of the replica running the requests; clients retry on the survivor with the same ids."""
    prefix = f"replicas-{uuid.uuid4().hex[:8]}"
    first = triton_replica("replica-a", triton_url, redis.url, prefix, work)
    second = triton_replica("replica-b", triton_url, redis.url, prefix, work)
    question = "[[slow:0.02]] How much does Janet make?"
    try:
        requests = [load_request("kill9", i, LONG_STRATEGY, question) for i in range(count)]
        first_outcomes = await interrupt_streams(first.address, requests, first.kill)
        retried = await run_wave([second.address], requests, timeout_s=60)
        reference = (await run_wave([second.address], [load_request("kill9-reference", 0, LONG_STRATEGY, question)]))[0]
    finally:
        first.kill()
        second.stop()
    stored = await read_stored(redis.url, prefix, [request.request_id for request in requests])
    lost = lost_succeeded(retried, stored)
    expected = reference.response.result if reference.response is not None else None
    differs = [
        outcome.request_id
        for outcome in retried
        if expected is None or outcome.response is None or outcome.response.result.text != expected.text
    ]
    tokens_lost = sum(tokens_of(expected) - tokens_of(stored[request.request_id].result) for request in requests)
    return scenario(
        "controller replica kill -9 (retry on the survivor)",
        {"first": codes(first_outcomes), "retry": codes(retried)},
        len(set(lost) | set(differs)),
        tokens_lost,
        resumed=sum(record.attempt == 2 for record in stored.values()),
        expected="UNAVAILABLE, then OK with the complete result (attempt 2) on retry",
        passed=not lost and not differs and tokens_lost == 0 and codes(retried) == {"OK": count},
    )


async def backend_kill_scenario(triton: Any, redis: RedisServer, work: Path, count: int) -> dict[str, Any]:
    """The Triton server killed (SIGKILL) while the requests stream."""
    prefix = f"backend-kill-{uuid.uuid4().hex[:8]}"
    controller = triton_replica("replica", triton.grpc_url, redis.url, prefix, work)
    question = "[[slow:0.02]] How much does Janet make?"
    try:
        requests = [load_request("backend-kill", i, LONG_STRATEGY, question) for i in range(count)]
        outcomes = await interrupt_streams(controller.address, requests, lambda: kill_triton(triton))
    finally:
        controller.stop()
    stored = await read_stored(redis.url, prefix, [request.request_id for request in requests])
    lost = []
    tokens_lost = 0
    for outcome in outcomes:
        record = stored[outcome.request_id]
        kept = record.result
        if record.status != "failed" or kept is None or outcome.partial is None or kept != outcome.partial:
            lost.append(outcome.request_id)
        # Scripted tokens are characters: the record must account for every character of its text, and hold at
        # least the text the client was streamed.
        if kept is not None:
            tokens_lost += abs(kept.usage.path_tokens - len(kept.text))
            tokens_lost += max(0, outcome.streamed_chars - len(kept.text))
    return scenario(
        "backend killed mid-stream (Triton SIGKILL)",
        codes(outcomes),
        len(lost),
        tokens_lost,
        with_partial=sum(outcome.partial is not None and outcome.partial.usage.path_tokens > 0 for outcome in outcomes),
        stored_status=dict(Counter(record.status for record in stored.values())),
        expected="UNAVAILABLE with the partial result; stored failed with it, never succeeded",
        passed=not lost and tokens_lost == 0 and codes(outcomes) == {"UNAVAILABLE": count},
    )


def kill_triton(triton: Any) -> None:
    """SIGKILL the Triton server and its Python-backend stubs (it runs in its own process group)."""
    process = triton._process  # the launcher keeps no public handle; a kill is what this scenario is about
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def find_scripted_triton(explicit: str) -> Path | None:
    if explicit:
        return Path(explicit)
    for directory in (Path.cwd(), *Path.cwd().parents):
        candidate = directory / "tests" / "fixtures" / "scripted_triton"
        if candidate.is_dir():
            return candidate
    return None


@contextlib.contextmanager
def scripted_triton(repository: Path, work: Path) -> Iterator[Any]:
    from certa_triton_local.launcher import TritonServer  # the local stack's launcher; only these scenarios need it

    server = TritonServer(model_repository=repository, log_path=work / "tritonserver.log")
    with server:
        yield server


# -- report -------------------------------------------------------------------------------------------------------


def print_load(runs: list[dict[str, Any]]) -> None:
    def pair(run: dict[str, Any], key: str, digits: int = 1) -> str:
        return "{p50_ms:.{d}f} / {p99_ms:.{d}f} ms".format(d=digits, **run[key])

    rows: list[tuple[str, Any]] = [
        ("CERTA_REDIS_POOL_SIZE", lambda r: r["redis_pool_size"]),
        ("requests in flight at once", lambda r: f"{r['concurrency']} of {r['requests']} ({r['channels']} channels)"),
        ("status codes", lambda r: ", ".join(f"{code} {n}" for code, n in r["codes"].items())),
        ("errors", lambda r: r["errors"]),
        (
            "after one retry with the same id",
            lambda r: ", ".join(f"{c} {n}" for c, n in r["retry_codes"].items()) or "-",
        ),
        ("requests lost (Redis record missing/wrong)", lambda r: r["requests_lost"]),
        ("'lease lost' warnings in the log", lambda r: r["leases_lost"]),
        ("resumed from a checkpoint (attempt > 1)", lambda r: r["resumed"]),
        ("token records lost (backend - recorded)", lambda r: f"{r['token_records_lost']} of {r['backend_tokens']}"),
        ("rounds (backend calls) per request", lambda r: f"{r['rounds_per_request']:.2f}"),
        ("backend time per request", lambda r: f"{r['backend_time_per_request_ms']:.2f} ms"),
        ("latency p50 / p99 (OK requests)", lambda r: f"{r['latency_p50_s']:.2f} / {r['latency_p99_s']:.2f} s"),
        ("added latency per round, loaded p50 / p99", lambda r: pair(r, "added_latency_per_round_loaded")),
        ("added latency per round, sequential p50/p99", lambda r: pair(r, "added_latency_per_round_sequential", 2)),
        ("requests/s (wall clock)", lambda r: f"{r['requests_per_s']:.1f}"),
        (
            "controller CPU / cores kept busy",
            lambda r: f"{r['controller_cpu_s']:.1f} s / {r['controller_cores_busy']:.2f}",
        ),
        ("requests/s per controller core", lambda r: f"{r['requests_per_s_per_controller_core']:.1f}"),
        ("Redis CPU / load generator CPU", lambda r: f"{r['redis_cpu_s']:.1f} s / {r['load_generator_cpu_s']:.1f} s"),
    ]
    cells = [(name, [str(render(run)) for run in runs]) for name, render in rows]
    width = max(len(name) for name, _ in cells)
    column = max(len(value) for _, values in cells for value in values)
    print(
        f"Load: {runs[0]['strategy']}, instant scripted backend, real gRPC server in its own process, real Redis; "
        f"{runs[0]['cpus']} cores"
    )
    for name, values in cells:
        print(f"  {name:<{width}}  " + "  ".join(f"{value:<{column}}" for value in values).rstrip())
    for run in runs:
        for detail, count in run["error_details"].items():
            print(f"  pool {run['redis_pool_size']}: {count} x {detail}")


def print_faults(faults: list[dict[str, Any]]) -> None:
    print("\nFaults")
    for result in faults:
        verdict = "PASS" if result.get("passed") else ("SKIPPED" if result.get("skipped") else "FAIL")
        print(f"  [{verdict}] {result['scenario']}")
        if result.get("skipped"):
            print(f"      {result['skipped']}")
            continue
        print(f"      client saw: {result['client_saw']}   (expected: {result['expected']})")
        print(f"      requests lost: {result['requests_lost']}   token records lost: {result['token_records_lost']}")
        extra = {
            key: value
            for key, value in result.items()
            if key not in ("scenario", "client_saw", "requests_lost", "token_records_lost", "expected", "passed")
        }
        if extra:
            print(f"      {', '.join(f'{key}: {value}' for key, value in extra.items())}")


async def campaign(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="certa-bench-load-"))
    redis = RedisServer(work / "redis", appendfsync="everysec").start()
    report: dict[str, Any] = {"work_dir": str(work)}
    try:
        if args.requests:
            sizes = [
                int(size) if size != "auto" else 2 * args.concurrency + 100 for size in args.redis_pool_sizes.split(",")
            ]
            report["load"] = [await load_run(redis, work, args, size) for size in sizes]
            print_load(report["load"])
        faults: list[dict[str, Any]] = []
        if args.faults:
            faults.append(await deadline_scenario(redis, work, args.fault_requests))
            faults.append(await redis_restart_scenario(redis, work, args.fault_requests))
            repository = find_scripted_triton(args.scripted_triton)
            names = ("controller replica kill -9", "backend killed mid-stream (Triton SIGKILL)")
            if repository is None:
                faults += [scenario(name, {}, 0, 0, skipped="no scripted Triton repository") for name in names]
            else:
                with scripted_triton(repository, work) as triton:
                    faults.append(await replica_kill_scenario(triton.grpc_url, redis, work, args.fault_requests))
                    faults.append(await backend_kill_scenario(triton, redis, work, args.fault_requests))
            print_faults(faults)
        report["faults"] = faults
    finally:
        redis.kill()
    return report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m certa_bench.load", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--requests", type=int, default=1000, help="requests of the load run (0: none)")
    parser.add_argument("--concurrency", type=int, default=0, help="requests in flight at once (default: all)")
    parser.add_argument("--channels", type=int, default=8, help="gRPC connections the clients share")
    parser.add_argument("--warmup", type=int, default=50, help="requests before the measured run")
    parser.add_argument("--baseline", type=int, default=30, help="sequential requests for the unloaded overhead")
    parser.add_argument("--timeout", type=float, default=300.0, help="client deadline of each request, seconds")
    parser.add_argument(
        "--redis-pool-sizes",
        default="64,auto",
        help="one load run per CERTA_REDIS_POOL_SIZE (64 is the default; auto: 2 x concurrency + 100)",
    )
    parser.add_argument(
        "--controller-env", action="append", default=[], metavar="CERTA_X=VALUE", help="extra controller settings"
    )
    parser.add_argument("--fault-requests", type=int, default=20, help="requests in flight in each fault scenario")
    parser.add_argument("--no-faults", dest="faults", action="store_false", help="skip the fault scenarios")
    parser.add_argument("--scripted-triton", default="", help="the scripted Triton model repository")
    parser.add_argument(
        "--profile",
        default="",
        metavar="FILE",
        help="record the controller with py-spy during each measured run ({pool} in FILE: the pool size)",
    )
    parser.add_argument("--out", default="bench-results/load.json", help="JSON results ('' for none)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target (no error, nothing lost) is missed")
    parser.add_argument(
        "--fairness", action="store_true", help="run only the two-tenant fairness scenario (certa_bench.fairness)"
    )
    from certa_bench import fairness

    fairness.add_arguments(parser)
    args = parser.parse_args(argv)
    args.concurrency = args.concurrency or args.requests
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.fairness:
        from certa_bench import fairness

        report = fairness.run(args)
    else:
        report = asyncio.run(campaign(args))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"\nwritten: {out}")
    failures = [fault["scenario"] for fault in report.get("faults", []) if not fault.get("passed", True)]
    for run in report.get("load", []):
        if run["errors"] or run["requests_lost"] or run["token_records_lost"]:
            failures.append(f"load with CERTA_REDIS_POOL_SIZE={run['redis_pool_size']}")
    if failures:
        print(f"targets missed: {'; '.join(failures)}")
    return 1 if failures and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
