"""The JSON log format: one object per line with timestamp, level, logger, trace and request fields."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from certa.observability.logs import JsonFormatter, bind_request

pytestmark = pytest.mark.unit

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("certa.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_has_timestamp_level_logger_and_message(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    logger.warning("disk %s", "full", extra={"fields": {"event": "access", "tokens": 7}})
    [line] = lines(stream)
    assert RFC3339_UTC.match(line["timestamp"]), line["timestamp"]
    assert (line["level"], line["logger"], line["message"]) == ("WARNING", "certa.test.logs", "disk full")
    assert (line["event"], line["tokens"]) == ("access", 7)
    assert "trace_id" not in line and "request_id" not in line


def test_inside_a_span_the_line_carries_its_trace_and_span_ids(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    with TracerProvider().get_tracer("t").start_as_current_span("work") as span:
        logger.info("inside")
    [line] = lines(stream)
    context = span.get_span_context()
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")


async def test_request_and_tenant_follow_the_task_and_the_tasks_it_starts(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured

    async def request(request_id: str, tenant: str) -> None:
        bind_request(request_id=request_id, tenant=tenant)
        await asyncio.sleep(0)
        logger.info("running")
        await asyncio.create_task(asyncio.to_thread(lambda: None))
        await asyncio.create_task(_log_later(logger))

    await asyncio.gather(request("r-1", "acme"), request("r-2", "globex"))
    logger.info("outside")
    found = lines(stream)
    pairs = sorted((line.get("request_id"), line.get("tenant"), line["message"]) for line in found[:-1])
    assert pairs == [
        ("r-1", "acme", "later"),
        ("r-1", "acme", "running"),
        ("r-2", "globex", "later"),
        ("r-2", "globex", "running"),
    ]
    assert "request_id" not in found[-1] and "tenant" not in found[-1]


async def _log_later(logger: logging.Logger) -> None:
    logger.info("later")
