"""Malformed requests, generated from the proto: every one is answered with OK or a defined status — never
INTERNAL, never UNKNOWN, never a crash — and the server is healthy afterwards.

Three kinds of input reach the real gRPC server (real Redis, scripted backend):

* messages built from the descriptors of `SolveRequest`, `GetSolveRequest` and `CancelSolveRequest`: random
  values in every field (huge strings, NaN and infinite floats, integers at and past their ranges, unknown enum
  values), every branch of every oneof, optional fields set or not, nested strategy messages;
* raw bytes on the wire for each method: random bytes, and well-formed wire records with the wrong wire type for
  known fields, unknown fields, and deep nesting (length-delimited and groups);
* the two inputs this campaign found answered INTERNAL and UNKNOWN before they were fixed — see the bottom.

The server runs on its own event loop in a thread, so hypothesis drives synchronous clients.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace

import grpc
import pytest
from google.protobuf import descriptor as proto_descriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from certa.api.auth import TENANT_METADATA
from certa.server import CertaServer
from certa.testing.redis_server import RedisServer
from certa.testing.scripted_backend import ScriptedBackend
from certa.v1 import reasoning_pb2 as pb
from tests.system.api.conftest import settings_for

pytestmark = pytest.mark.integration

SERVICE = "/certa.v1.ReasoningService/"
METHODS = {
    "Solve": pb.SolveRequest,
    "SolveStream": pb.SolveRequest,
    "GetSolve": pb.GetSolveRequest,
    "CancelSolve": pb.CancelSolveRequest,
}
# What a malformed request may be answered with. CANCELLED is absent on purpose: the client never cancels here.
DEFINED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED,
}
CALL_TIMEOUT_S = 2.0
# Duration seconds beyond this overflow datetime.timedelta (999,999,999 days); the server must not rely on it.
TIMEDELTA_SECONDS = 86_399_999_999_999


# -- the server -------------------------------------------------------------------------------------------------


class ServerThread:
    """A `CertaServer` on its own event loop in a daemon thread; its ERROR logs are collected."""

    def __init__(self, redis_url: str) -> None:
        base = settings_for({"scripted": "scripted://"}, redis_url, redis_pool_size=256)
        # Small caps keep accepted random requests short (every one really runs on the scripted backend).
        self.settings = replace(base, max_samples=4, max_token_budget=256, default_token_budget=256)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: CertaServer = self._run(self._start())
        self.errors: list[logging.LogRecord] = []
        self._handler = _Collector(self.errors)
        logging.getLogger("certa").addHandler(self._handler)

    def _run(self, coroutine):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    async def _start(self) -> CertaServer:
        server = CertaServer(self.settings, {"scripted": ScriptedBackend()})
        await server.start()
        return server

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def stop(self) -> None:
        logging.getLogger("certa").removeHandler(self._handler)
        self._run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class _Collector(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def server(redis_server: RedisServer) -> Iterator[ServerThread]:
    running = ServerThread(redis_server.url)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.address) as opened:
        yield opened


@pytest.fixture(autouse=True)
def no_server_errors(server: ServerThread) -> Iterator[None]:
    """No test may make the server log an error (an unexpected exception is logged before INTERNAL)."""
    server.errors.clear()
    yield
    logged = [f"{record.getMessage()}\n{record.exc_text or ''}" for record in server.errors]
    server.errors.clear()
    assert not logged, "the server logged errors:\n" + "\n".join(logged)


# -- calling it -------------------------------------------------------------------------------------------------


def call_raw(channel: grpc.Channel, method: str, payload: bytes, tenant: str = "fuzz") -> grpc.StatusCode:
    """Send `payload` as the request of `method`, as bytes on the wire; the status the call ended with."""
    metadata = ((TENANT_METADATA, tenant),)
    try:
        if method == "SolveStream":
            stream = channel.unary_stream(
                SERVICE + method, request_serializer=lambda b: b, response_deserializer=pb.SolveEvent.FromString
            )
            for _ in stream(payload, timeout=CALL_TIMEOUT_S, metadata=metadata):
                pass
        else:
            unary = channel.unary_unary(
                SERVICE + method, request_serializer=lambda b: b, response_deserializer=lambda b: b
            )
            unary(payload, timeout=CALL_TIMEOUT_S, metadata=metadata)
    except grpc.RpcError as error:
        code = error.code()  # type: ignore[attr-defined]
        detail = error.details() or ""  # type: ignore[attr-defined]
        assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (
            f"{method} answered {code.name}: {detail}"
        )
        return code  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def assert_defined(channel: grpc.Channel, method: str, message: Message) -> None:
    code = call_raw(channel, method, message.SerializeToString())
    event(f"{method}: {code.name}")
    assert code in DEFINED, f"{method}({message!r:.300}) answered {code.name}"


# -- messages from the descriptors ------------------------------------------------------------------------------

FD = proto_descriptor.FieldDescriptor
strings = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300),
    st.sampled_from(["", " ", "\x00", "Q", "[[slow:0]]", "a/b", "{x}", "é" * 7000]),
    # Huge: over the prompt cap, and past gRPC's 4 MiB message limit.
    st.sampled_from([6001, 100_000, 5_000_000]).map(lambda n: "x" * n),
)
request_ids = st.one_of(strings, st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", fullmatch=True))
floats = st.one_of(
    st.floats(width=32),  # NaN, infinities, subnormals
    st.sampled_from([0.0, -0.0, 1e-45, 0.5, 1.0, 1.0000001, 2.0, 2.0000002, -2.0, -1.0, 3.4e38]),
)


def ints(bits: int, signed: bool) -> st.SearchStrategy[int]:
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    edges = [v for v in (low, high, 0, 1, 2, 3, 4, 8, 32, 64, 65, 256, 257, 1000, 1001, 4096, 4097) if low <= v <= high]
    return st.one_of(st.integers(low, high), st.sampled_from(edges))


SCALARS: dict[int, st.SearchStrategy[object]] = {
    FD.TYPE_STRING: strings,
    FD.TYPE_BOOL: st.booleans(),
    FD.TYPE_FLOAT: floats,
    FD.TYPE_DOUBLE: floats,
    FD.TYPE_UINT32: ints(32, False),
    FD.TYPE_UINT64: ints(64, False),
    FD.TYPE_INT32: ints(32, True),
    FD.TYPE_INT64: ints(64, True),
    # Proto3 enums are open: any int32 goes on the wire.
    FD.TYPE_ENUM: ints(32, True),
}


def durations() -> st.SearchStrategy[Duration]:
    # Any int64 of seconds (far past Duration's documented ±315,576,000,000, and past what timedelta can hold).
    return st.builds(
        Duration,
        seconds=st.one_of(
            ints(64, True), st.sampled_from([0, 1, -1, 120, 121, 315_576_000_001, TIMEDELTA_SECONDS + 1])
        ),
        nanos=ints(32, True),
    )


def field_values(field: proto_descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[object]:
    if field.type == FD.TYPE_MESSAGE:
        return messages(field.message_type, depth + 1)
    if field.name == "request_id":
        return request_ids
    return SCALARS[field.type]


def messages(descriptor: proto_descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Any message of `descriptor`'s type: each plain field set or left at its default, one branch (or none) of
    each oneof, nested messages generated the same way."""
    if descriptor.full_name == Duration.DESCRIPTOR.full_name:
        return durations()
    cls = GetMessageClass(descriptor)
    if depth > 4:
        return st.just(cls())
    parts: list[st.SearchStrategy[dict[str, object]]] = []
    for field in descriptor.fields:
        if field.containing_oneof is None:
            parts.append(st.one_of(st.just({}), field_values(field, depth).map(lambda v, n=field.name: {n: v})))
    for oneof in descriptor.oneofs:  # real oneofs and the synthetic ones of proto3 `optional`
        branches: list[st.SearchStrategy[dict[str, object]]] = [st.just({})]
        branches += [field_values(f, depth).map(lambda v, n=f.name: {n: v}) for f in oneof.fields]
        parts.append(st.one_of(branches))

    def build(chosen: list[dict[str, object]]) -> Message:
        message = cls()
        for part in chosen:
            for name, value in part.items():
                target = descriptor.fields_by_name[name]
                if target.type == FD.TYPE_MESSAGE:
                    getattr(message, name).CopyFrom(value)
                else:
                    setattr(message, name, value)
        return message

    return st.tuples(*parts).map(lambda chosen: build(list(chosen)))


def leaves(
    descriptor: proto_descriptor.Descriptor, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], proto_descriptor.FieldDescriptor]]:
    """Every field reachable from `descriptor` (nested messages included, Durations whole), with its path."""
    found = []
    for field in descriptor.fields:
        found.append(((*path, field.name), field))
        if field.type == FD.TYPE_MESSAGE and field.message_type.full_name != Duration.DESCRIPTOR.full_name:
            found += leaves(field.message_type, (*path, field.name))
    return found


def overwrite(message: Message, path: tuple[str, ...], value: object) -> None:
    for name in path[:-1]:
        message = getattr(message, name)
    if isinstance(value, Message):
        getattr(message, path[-1]).CopyFrom(value)
    else:
        setattr(message, path[-1], value)


def valid_requests() -> st.SearchStrategy[pb.SolveRequest]:
    """Requests the server accepts and runs (on the scripted backend)."""
    dynasor = st.builds(
        pb.DynasorCot,
        preset=st.integers(0, 5),
        chunk_tokens=st.integers(1, 64),
        probe_tokens=st.integers(1, 8),
        disable_early_exit=st.booleans(),
    )
    kinds = st.one_of(
        st.just(pb.Strategy(plain=pb.PlainCot())),
        dynasor.map(lambda d: pb.Strategy(dynasor_cot=d)),
        st.integers(1, 4).map(lambda n: pb.Strategy(majority_vote=pb.MajorityVote(n=n, plain=pb.PlainCot()))),
    )

    def build(question: str, strategy: pb.Strategy, request_id: str, budget: int) -> pb.SolveRequest:
        request = pb.SolveRequest(question=question, strategy=strategy, request_id=request_id, token_budget=budget)
        if strategy.HasField("majority_vote"):
            request.sampling.temperature = 0.7
        return request

    return st.builds(
        build,
        st.text(min_size=1, max_size=60).filter(str.strip),
        kinds,
        st.one_of(st.just(""), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True)),
        st.integers(64, 256),
    )


SOLVE_LEAVES = leaves(pb.SolveRequest.DESCRIPTOR)
overwrites = st.sampled_from(SOLVE_LEAVES).flatmap(
    lambda leaf: field_values(leaf[1], len(leaf[0])).map(lambda value: (leaf[0], value))
)


def mutated_requests() -> st.SearchStrategy[pb.SolveRequest]:
    """A valid request with up to three fields anywhere in it overwritten by generated values (none: as is)."""

    def apply(request: pb.SolveRequest, changes: list[tuple[tuple[str, ...], object]]) -> pb.SolveRequest:
        for path, value in changes:
            overwrite(request, path, value)
        return request

    return st.builds(apply, valid_requests(), st.lists(overwrites, max_size=3))


# -- bytes on the wire ------------------------------------------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def record(number: int, wire_type: int, payload: bytes) -> bytes:
    return varint(number << 3 | wire_type) + payload


def wire_record(depth: int = 0) -> st.SearchStrategy[bytes]:
    """One wire record of any field number (known ones included) with any wire type and a fitting payload."""
    numbers = st.one_of(st.integers(1, 12), st.integers(1, 2**29 - 1))
    nested = st.lists(st.deferred(lambda: wire_record(depth + 1)), max_size=3).map(b"".join)
    delimited = st.one_of(st.binary(max_size=64), nested) if depth < 3 else st.binary(max_size=64)
    return st.one_of(
        st.tuples(numbers, st.integers(0, 2**64 - 1)).map(lambda r: record(r[0], 0, varint(r[1]))),
        st.tuples(numbers, st.binary(min_size=8, max_size=8)).map(lambda r: record(r[0], 1, r[1])),
        st.tuples(numbers, delimited).map(lambda r: record(r[0], 2, varint(len(r[1])) + r[1])),
        st.tuples(numbers, st.binary(min_size=4, max_size=4)).map(lambda r: record(r[0], 5, r[1])),
        numbers.map(lambda n: record(n, 3, b"") + record(n, 4, b"")),  # an empty group
    )


def nested_delimited(levels: int, number: int) -> bytes:
    message = b""
    for _ in range(levels):
        message = record(number, 2, varint(len(message)) + message)
    return message


def nested_groups(levels: int) -> bytes:
    return record(100, 3, b"") * levels + record(100, 4, b"") * levels


payloads = st.one_of(
    st.binary(max_size=512),
    st.lists(wire_record(), max_size=8).map(b"".join),
    st.tuples(st.integers(1, 300), st.sampled_from([3, 100, 9999])).map(lambda r: nested_delimited(*r)),
    st.integers(1, 200).map(nested_groups),
)


# -- the properties ---------------------------------------------------------------------------------------------

FUZZ = settings(
    max_examples=500,
    deadline=None,
    # `no_server_errors` is function-scoped on purpose: it checks the server log once per test, after every example.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(request=st.one_of(messages(pb.SolveRequest.DESCRIPTOR), mutated_requests()), streaming=st.booleans())
def test_generated_solve_requests_get_a_defined_status(
    channel: grpc.Channel, request: pb.SolveRequest, streaming: bool
) -> None:
    assert_defined(channel, "SolveStream" if streaming else "Solve", request)


@settings(FUZZ, max_examples=150)
@given(request=messages(pb.GetSolveRequest.DESCRIPTOR), cancel=messages(pb.CancelSolveRequest.DESCRIPTOR))
def test_generated_get_and_cancel_requests_get_a_defined_status(
    channel: grpc.Channel, request: pb.GetSolveRequest, cancel: pb.CancelSolveRequest
) -> None:
    assert_defined(channel, "GetSolve", request)
    assert_defined(channel, "CancelSolve", cancel)


@FUZZ
@given(method=st.sampled_from(sorted(METHODS)), payload=payloads)
def test_bytes_on_the_wire_get_a_defined_status(channel: grpc.Channel, method: str, payload: bytes) -> None:
    code = call_raw(channel, method, payload)
    event(f"{method}: {code.name}")
    assert code in DEFINED, f"{method}({payload!r:.200}) answered {code.name}"
    try:
        METHODS[method].FromString(payload)
    except DecodeError:
        assert code == grpc.StatusCode.INVALID_ARGUMENT, f"undecodable {payload!r:.200} answered {code.name}"


def test_the_server_is_healthy_and_serves_after_the_fuzzing(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "certa.v1.ReasoningService"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING, service
    solve = channel.unary_unary(
        SERVICE + "Solve",
        request_serializer=pb.SolveRequest.SerializeToString,
        response_deserializer=pb.SolveResponse.FromString,
    )
    request = pb.SolveRequest(question="Q", strategy=pb.Strategy(plain=pb.PlainCot()), request_id=uuid.uuid4().hex)
    response = solve(request, timeout=10)
    assert response.status == pb.SOLVE_STATUS_SUCCEEDED and response.result.answer == "18"


# -- found by this campaign, fixed: a huge deadline was INTERNAL, an undecodable body UNKNOWN ----------------------


def test_a_deadline_past_the_timedelta_range_is_invalid_argument(channel: grpc.Channel) -> None:
    request = pb.SolveRequest(question="Q", strategy=pb.Strategy(plain=pb.PlainCot()))
    request.deadline.seconds = 2**62
    assert call_raw(channel, "Solve", request.SerializeToString()) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("method", sorted(METHODS))
def test_an_undecodable_request_is_invalid_argument(channel: grpc.Channel, method: str) -> None:
    for payload in (b"\xff\xff\xff", record(1, 2, b"\x02\xc3\x28"), nested_groups(200)):
        assert call_raw(channel, method, payload) == grpc.StatusCode.INVALID_ARGUMENT
