"""Prompts and generated text stay out of logs and spans unless the tenant's policy opts in; secrets never appear.

The controller runs with a real Redis, in-memory span export and every log record captured at DEBUG, through
successful, failed (backend error) and refused (bad API key) requests."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from certa.api.auth import new_api_key
from certa.config import AuthSettings
from certa.server import CertaServer
from certa.testing.redis_server import RedisServer
from certa.testing.scripted_backend import ScriptedBackend
from certa.testing.scripted_model import DEFAULT_SCRIPT
from certa.v1 import reasoning_pb2 as pb
from certa.v1 import reasoning_pb2_grpc as pb_grpc
from tests.system.api.conftest import settings_for
from tests.unit.observability.test_telemetry import Observed, observed  # noqa: F401  (the fixture)

pytestmark = pytest.mark.integration

SECRET_QUESTION = "[[confident-after:100]] Confidential: project NIGHTJAR revenue? "
DYNASOR = pb.Strategy(dynasor_cot=pb.DynasorCot(chunk_tokens=32, certainty_threshold=2, probe_tokens=10))
GENERATED = DEFAULT_SCRIPT[:40]  # text every scripted path generates


async def test_no_prompt_generated_text_or_secret_in_logs_or_spans_unless_opted_in(
    observed: Observed,  # noqa: F811
    redis_server: RedisServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    keys = {tenant: new_api_key() for tenant in ("quiet", "chatty")}
    (tmp_path / "keys.json").write_text(
        json.dumps({"keys": [{"tenant": t, "sha256": digest} for t, (_, digest) in keys.items()]})
    )
    (tmp_path / "tenants.json").write_text(json.dumps({"tenants": {"chatty": {"log_content": True}}}))
    settings = replace(
        settings_for(
            {"scripted": "scripted://"}, redis_server.url, auth=AuthSettings(api_keys_file=str(tmp_path / "keys.json"))
        ),
        tenants_file=str(tmp_path / "tenants.json"),
    )
    server = CertaServer(settings, {"scripted": ScriptedBackend()}, observed.telemetry)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.ReasoningServiceStub(channel)
            quiet = (("authorization", f"Bearer {keys['quiet'][0]}"),)
            await stub.Solve(pb.SolveRequest(question=SECRET_QUESTION, strategy=DYNASOR), metadata=quiet)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Solve(
                    pb.SolveRequest(question=SECRET_QUESTION + "[[fail-after:40]]", strategy=DYNASOR), metadata=quiet
                )
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Solve(
                    pb.SolveRequest(question=SECRET_QUESTION, strategy=DYNASOR),
                    metadata=(("authorization", f"Bearer {keys['quiet'][0]}x"),),
                )
            quiet_spans = observed.spans.get_finished_spans()
            chatty = (("authorization", f"Bearer {keys['chatty'][0]}"),)
            opted_in = await stub.Solve(pb.SolveRequest(question=SECRET_QUESTION, strategy=DYNASOR), metadata=chatty)
    finally:
        await server.stop()

    logged = "\n".join(record.getMessage() + str(record.exc_info or "") for record in caplog.records)
    attributes = json.dumps(
        [
            {**dict(span.attributes or {}), "events": [dict(event.attributes or {}) for event in span.events]}
            for span in quiet_spans
        ],
        default=str,
    )
    assert quiet_spans and caplog.records
    for forbidden in ("NIGHTJAR", GENERATED, keys["quiet"][0], keys["chatty"][0]):
        assert forbidden not in logged
        assert forbidden not in attributes
    assert '"certa.probe.answer"' not in attributes and '"certa.probe.answer_chars"' in attributes
    # The tenant that opted in gets its probe answers in its spans.
    chatty_events = [
        dict(event.attributes or {})
        for span in observed.spans.get_finished_spans()[len(quiet_spans) :]
        for event in span.events
        if event.name == "certa.probe"
    ]
    assert [event["certa.probe.answer"] for event in chatty_events] == [p.answer for p in opted_in.result.probes]
