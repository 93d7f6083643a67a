"""An in-flight-batching generation engine over one llama.cpp context, with prefix (KV) reuse.

One context holds `max_sequences` llama.cpp sequences ("slots"), each with its own KV stream of
`kv_cells / max_sequences` cells. A slot remembers which tokens its cache holds after its request ends, so a later
request whose prompt starts with those tokens skips evaluating them. When that slot is still busy (a probe and a
continuation of the same path arrive at the same time) its stream is copied to a free slot (`llama_memory_seq_cp`, a
memory copy) and cut to the shared prefix: nothing is recomputed.

Greedy decoding is reproducible, so a path continued chunk by chunk is token for token the path generated in one
call: every sequence's cells sit in its own stream in position order (a cache shared by all sequences would place
them wherever cells are free, and llama.cpp's attention sums round differently with the cells' places), each request
is decoded in a batch of its own (see `_step`), and the last prompt token is always decoded alone.

A single thread owns the llama.cpp state. Each step it admits waiting requests into free slots, drops cancelled
ones, decodes the pending tokens of every active request and samples a token for every request whose last pending
token was decoded.
"""

from __future__ import annotations

import enum
import itertools
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import llama_cpp as llama
import numpy as np

from certa_triton_local.sampling import SamplingParams, build_sampler, free_sampler
from certa_triton_local.vocab import Vocab, load_model

_KV_FULL = "the KV cache is full; retry later or start the server with more --kv-cells"


class FinishReason(enum.Enum):
    LENGTH = "length"
    END_ID = "end_id"
    STOP_WORDS = "stop_words"
    CANCELLED = "cancelled"
    ERROR = "error"


class InvalidRequest(ValueError):
    """A request the engine cannot serve; `field` names the offending part (prompt, max_tokens, end_id, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Generation:
    """What to generate. `end_id < 0` never stops on a token; word lists are token-id sequences."""

    prompt: tuple[int, ...]
    max_tokens: int
    end_id: int
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop_words: tuple[tuple[int, ...], ...] = ()
    bad_words: tuple[tuple[int, ...], ...] = ()
    min_tokens: int = 0
    return_log_probs: bool = False
    request_id: str = ""


@dataclass
class Stats:
    """Per-request timings (wall clock, ns) and how many prompt tokens came from the KV cache."""

    arrival_ns: int = 0
    first_scheduled_ns: int = 0
    first_token_ns: int = 0
    last_token_ns: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True)
class Step:
    """New tokens of one request after one engine step. The end token (`end_id`) is never among them."""

    tokens: tuple[int, ...]
    log_probs: tuple[float, ...] = ()
    finish: FinishReason | None = None
    error: str = ""


class Sink(Protocol):
    """Where a request's steps go. Called on the engine thread; must not block for long."""

    def on_step(self, job: Job, step: Step) -> None: ...

    def cancelled(self) -> bool: ...


@dataclass
class Slot:
    seq_id: int
    tokens: list[int] = field(default_factory=list)  # tokens whose KV this sequence holds, positions 0..n-1
    busy: bool = False
    last_used: int = 0


@dataclass(eq=False)
class Job:
    generation: Generation
    sink: Sink
    stats: Stats = field(default_factory=Stats)
    generated: list[int] = field(default_factory=list)
    stop_requested: bool = False
    finished: bool = False
    slot: Slot | None = None
    sampler: llama.llama_sampler_p | None = None
    pending: list[int] = field(default_factory=list)  # prompt tokens still to evaluate, then the last sampled one


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class Engine:
    """Serves `Generation`s concurrently on one model. Thread-safe `submit` and `cancel`; `close` to stop."""

    def __init__(
        self,
        model_path: Path,
        kv_cells: int = 16384,
        max_sequences: int = 16,
        threads: int = 2,
        batch_tokens: int = 512,
        batch_invariant: bool = True,
        log: Callable[[str], None] = print,
    ) -> None:
        self._model = load_model(model_path)
        self.vocab = Vocab(self._model)
        params = llama.llama_context_default_params()
        params.n_ctx = kv_cells
        params.n_batch = batch_tokens
        params.n_ubatch = batch_tokens
        params.n_seq_max = max_sequences
        params.n_threads = threads
        params.n_threads_batch = threads
        params.kv_unified = False
        params.no_perf = True
        self._ctx = llama.llama_init_from_model(self._model, params)
        if not self._ctx:
            raise RuntimeError(f"llama.cpp could not create a context of {kv_cells} cells")
        self._memory = llama.llama_get_memory(self._ctx)
        self._n_vocab = self.vocab.size
        self.max_context = min(self.vocab.context_length, int(llama.llama_n_ctx_seq(self._ctx)))
        self._batch_tokens = batch_tokens
        self._batch_invariant = batch_invariant
        self._batch = llama.llama_batch_init(batch_tokens, 0, 1)
        self._slots = [Slot(seq_id) for seq_id in range(max_sequences)]
        self._clock = itertools.count(1)
        self._log = log
        self._waiting: deque[Job] = deque()
        self._active: list[Job] = []
        self._by_id: dict[str, Job] = {}
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="certa-engine", daemon=True)
        self._thread.start()

    # ---- public API (any thread) -------------------------------------------------------------------------------

    def validate(self, generation: Generation) -> None:
        prompt, limit = generation.prompt, self.max_context
        if not prompt:
            raise InvalidRequest("prompt", "must hold at least one token")
        bad = next((t for t in prompt if not self.vocab.is_valid(t)), None)
        if bad is not None:
            raise InvalidRequest("prompt", f"token id {bad} is outside the vocabulary [0, {self._n_vocab})")
        if len(prompt) >= limit:
            raise InvalidRequest("prompt", f"has {len(prompt)} tokens; the context holds {limit} tokens in all")
        if generation.max_tokens <= 0:
            raise InvalidRequest("max_tokens", f"must be > 0, got {generation.max_tokens}")
        if len(prompt) + generation.max_tokens > limit:
            raise InvalidRequest(
                "max_tokens",
                f"prompt ({len(prompt)} tokens) + max_tokens ({generation.max_tokens}) exceeds the context of "
                f"{limit} tokens",
            )
        if generation.end_id >= self._n_vocab:
            raise InvalidRequest("end_id", f"{generation.end_id} is outside the vocabulary [0, {self._n_vocab})")
        for name, words in (("stop_words", generation.stop_words), ("bad_words", generation.bad_words)):
            for word in words:
                if any(not self.vocab.is_valid(t) for t in word):
                    raise InvalidRequest(name, f"token ids {list(word)} are outside the vocabulary")

    def submit(self, generation: Generation, sink: Sink) -> Job:
        """Queue a generation; its steps go to `sink`. Raises InvalidRequest before queueing anything."""
        self.validate(generation)
        job = Job(generation, sink, Stats(arrival_ns=time.time_ns()))
        with self._cond:
            if self._closing:
                raise RuntimeError("the engine is shutting down")
            self._waiting.append(job)
            if generation.request_id:
                self._by_id[generation.request_id] = job
            self._cond.notify()
        return job

    def cancel(self, request_id: str) -> bool:
        """Stop the request with this id (TensorRT-LLM's `stop` input). False when no such request is running."""
        with self._cond:
            job = self._by_id.get(request_id)
            if job is None:
                return False
            job.stop_requested = True
            self._cond.notify()
            return True

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=30)
        llama.llama_batch_free(self._batch)
        llama.llama_free(self._ctx)
        llama.llama_model_free(self._model)

    # ---- engine thread -----------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closing and not self._active and not self._admissible():
                    self._cond.wait(timeout=0.5)
                    self._drop_cancelled_waiting()
                if self._closing:
                    break
                free = sum(not slot.busy for slot in self._slots)
                admitted = [self._waiting.popleft() for _ in range(min(free, len(self._waiting)))]
            for job in admitted:
                self._guarded(self._admit, [job], job)
            with self._cond:
                self._drop_cancelled_waiting()
            self._drop_cancelled()
            if self._active:
                self._guarded(self._step, list(self._active))
        for job in [*self._active, *self._waiting]:
            self._finish(job, Step((), finish=FinishReason.ERROR, error="the server is shutting down"))

    def _guarded(self, action: Callable[..., None], jobs: list[Job], *args: object) -> None:
        """Run `action`; if it fails, fail `jobs` and forget their caches instead of stopping the engine thread."""
        try:
            action(*args)
        except Exception as exc:  # noqa: BLE001 - the engine thread must survive any single failure
            self._log(f"engine error: {exc!r}")
            for job in jobs:
                if job.slot is not None:
                    self._truncate(job.slot, 0)
                self._finish(job, Step((), finish=FinishReason.ERROR, error=f"internal error: {exc}"))

    def _admissible(self) -> bool:
        return bool(self._waiting) and any(not slot.busy for slot in self._slots)

    def _drop_cancelled_waiting(self) -> None:
        for job in [j for j in self._waiting if j.stop_requested or self._sink_cancelled(j)]:
            self._waiting.remove(job)
            self._finish(job, Step((), finish=FinishReason.CANCELLED))

    def _admit(self, job: Job) -> None:
        """Give `job` a slot, reusing the longest cached prefix of its prompt."""
        prompt = list(job.generation.prompt)
        source, shared = None, 0
        for slot in self._slots:
            n = common_prefix(slot.tokens, prompt)
            if n > shared:
                source, shared = slot, n
        shared = min(shared, len(prompt) - 1)  # the last prompt token is evaluated again to get its logits
        idle = [slot for slot in self._slots if not slot.busy]
        if source is not None and not source.busy and (shared == len(source.tokens) or len(idle) == 1):
            target = source  # extend in place: nothing cached is lost
            self._truncate(target, shared)
        else:
            target = min((s for s in idle if s is not source), key=lambda s: (len(s.tokens) > 0, s.last_used))
            self._truncate(target, 0)
            if source is not None and shared > 0:
                # Each sequence has its own KV stream; llama.cpp copies whole streams, so copy and cut the tail.
                llama.llama_memory_seq_cp(self._memory, source.seq_id, target.seq_id, -1, -1)
                llama.llama_memory_seq_rm(self._memory, target.seq_id, shared, -1)
                target.tokens = prompt[:shared]
        target.busy = True
        job.slot = target
        job.pending = prompt[shared:]
        job.stats.cached_tokens = shared
        job.stats.first_scheduled_ns = time.time_ns()
        generation = job.generation
        job.sampler = build_sampler(generation.sampling, len(prompt) + generation.max_tokens)
        if generation.sampling.penalised:
            for token in prompt:
                llama.llama_sampler_accept(job.sampler, token)
        self._active.append(job)

    def _truncate(self, slot: Slot, keep: int) -> None:
        if len(slot.tokens) > keep:
            llama.llama_memory_seq_rm(self._memory, slot.seq_id, keep, -1)
            del slot.tokens[keep:]

    def _sink_cancelled(self, job: Job) -> bool:
        try:
            return job.sink.cancelled()
        except Exception:  # noqa: BLE001 - a sink that cannot answer has lost its client
            return True

    def _drop_cancelled(self) -> None:
        for job in [j for j in self._active if j.stop_requested or self._sink_cancelled(j)]:
            self._log(
                f"request {job.generation.request_id or id(job)} cancelled after "
                f"{len(job.generated)} generated tokens; generation stopped"
            )
            self._finish(job, Step((), finish=FinishReason.CANCELLED))

    def _step(self) -> None:
        """Decode pending tokens and sample for every request whose last pending token was evaluated.

        Batch-invariant (the default): each request is decoded in a llama.cpp batch of its own. llama.cpp's kernels
        round differently with the batch's size and content, so a path decoded beside a concurrent probe would
        drift from the same path decoded alone, and greedy continuation chunk by chunk would stop being
        token-for-token the one-shot path. Mixed batching is faster and available with `batch_invariant=False`.
        """
        entries: list[tuple[Job, int]] = []  # (job, number of its tokens in the batch)
        budget = self._batch_tokens
        ordered = sorted(self._active, key=lambda j: len(j.pending))  # generating requests (1 token) first
        for job in ordered:
            if budget == 0:
                break
            # The last pending token is always decoded on its own, so the logits a generation starts from do not
            # depend on how much of its prompt happened to be cached (a full prefill vs a one-token tail).
            take = min(len(job.pending) - 1 if len(job.pending) > 1 else 1, budget)
            entries.append((job, take))
            budget -= take
        groups = [[entry] for entry in entries] if self._batch_invariant else [entries]
        for group in groups:
            self._decode_and_sample(group)

    def _decode_and_sample(self, entries: list[tuple[Job, int]]) -> None:
        while True:
            result = self._decode(entries)
            if result == 0:
                break
            if result == 1 and self._evict_idle():
                continue
            if result == 1 and len(entries) > 1:
                job, _ = entries.pop()  # the KV cache cannot hold everyone: drop the request admitted last
                self._finish(job, Step((), finish=FinishReason.ERROR, error=_KV_FULL))
                continue
            message = _KV_FULL if result == 1 else f"llama_decode failed with code {result}"
            for job, _ in entries:
                self._finish(job, Step((), finish=FinishReason.ERROR, error=message))
            return
        index = 0
        for job, take in entries:
            assert job.slot is not None
            evaluated, job.pending = job.pending[:take], job.pending[take:]
            job.slot.tokens.extend(evaluated)
            index += take
            if not job.pending:
                self._sample(job, index - 1)

    def _decode(self, entries: list[tuple[Job, int]]) -> int:
        batch, i = self._batch, 0
        for job, take in entries:
            assert job.slot is not None
            start = len(job.slot.tokens)
            for offset, token in enumerate(job.pending[:take]):
                batch.token[i] = token
                batch.pos[i] = start + offset
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = job.slot.seq_id
                batch.logits[i] = offset == len(job.pending) - 1
                i += 1
        batch.n_tokens = i
        return int(llama.llama_decode(self._ctx, batch))

    def _evict_idle(self) -> bool:
        """Drop the least recently used idle cache to make room; False when there is none."""
        cached = [s for s in self._slots if not s.busy and s.tokens]
        if not cached:
            return False
        self._truncate(min(cached, key=lambda s: s.last_used), 0)
        return True

    def _sample(self, job: Job, index: int) -> None:
        generation = job.generation
        logits = np.ctypeslib.as_array(llama.llama_get_logits_ith(self._ctx, index), shape=(self._n_vocab,))
        self._mask(job, logits)
        token = int(llama.llama_sampler_sample(job.sampler, self._ctx, index))
        log_probs: tuple[float, ...] = ()
        now = time.time_ns()
        job.stats.first_token_ns = job.stats.first_token_ns or now
        job.stats.last_token_ns = now
        if generation.end_id >= 0 and token == generation.end_id:
            self._finish(job, Step((), finish=FinishReason.END_ID))
            return
        if generation.return_log_probs:
            peak = float(logits.max())
            log_probs = (float(logits[token]) - peak - math.log(float(np.exp(logits - peak).sum())),)
        job.generated.append(token)
        finish = None
        if any(len(w) <= len(job.generated) and tuple(job.generated[-len(w) :]) == w for w in generation.stop_words):
            finish = FinishReason.STOP_WORDS
        elif len(job.generated) >= generation.max_tokens:
            finish = FinishReason.LENGTH
        step = Step((token,), log_probs, finish)
        if finish is not None:
            self._finish(job, step)
            return
        job.pending = [token]
        self._emit(job, step)

    def _mask(self, job: Job, logits: np.ndarray) -> None:
        """Ban bad words' last tokens where their prefix matches, and the end token before `min_tokens`."""
        generation = job.generation
        if generation.end_id >= 0 and len(job.generated) < generation.min_tokens:
            logits[generation.end_id] = -np.inf
        if generation.bad_words:
            history = [*generation.prompt, *job.generated]
            for word in generation.bad_words:
                head = word[:-1]
                if not head or tuple(history[-len(head) :]) == head:
                    logits[word[-1]] = -np.inf

    def _emit(self, job: Job, step: Step) -> None:
        try:
            job.sink.on_step(job, step)
        except Exception as exc:  # noqa: BLE001 - a failed send means the client is gone
            self._log(f"request {job.generation.request_id or id(job)}: could not send a response ({exc}); stopping it")
            job.stop_requested = True

    def _finish(self, job: Job, step: Step) -> None:
        if job.finished:
            return
        job.finished = True
        if job in self._active:
            self._active.remove(job)
        if job.slot is not None:
            job.slot.busy = False
            job.slot.last_used = next(self._clock)
        if job.sampler is not None:
            free_sampler(job.sampler)
            job.sampler = None
        with self._cond:
            if self._by_id.get(job.generation.request_id) is job:
                del self._by_id[job.generation.request_id]
        self._emit(job, step)
