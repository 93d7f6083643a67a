"""Server-sent events as OpenAI-compatible servers stream them: the `data` of each event, up to `[DONE]`.

An event is a run of `field: value` lines ended by a blank line; several `data` lines join with newlines.
Comment lines (starting with `:`) and other fields (`event`, `id`, `retry`) carry nothing Certa needs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

DONE = "[DONE]"


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """Yield each event's data; stop at `[DONE]` or at the end of the stream."""
    data: list[str] = []
    async for line in lines:
        if line:
            field, _, value = line.partition(":")
            if field == "data":
                data.append(value.removeprefix(" "))
            continue
        if data:
            payload, data = "\n".join(data), []
            if payload == DONE:
                return
            yield payload
    if data and (payload := "\n".join(data)) != DONE:
        yield payload
