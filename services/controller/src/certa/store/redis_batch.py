"""Redis commands sent in batches: the commands callers issue while a batch is on the wire go out together as the
next one (one pipeline: one pooled connection, one socket write, one round trip).

redis-py's cost per command is mostly its own bookkeeping (taking a connection from the pool under a timeout, a
socket write wrapped in `asyncio.wait_for`, a read timeout per reply), not Redis's work. Under load many runs
checkpoint at once, so paying it once per batch instead of once per command is most of what a round costs in the
store (docs/performance.md). One request alone sees no extra delay: its command is sent at once, as before.

Each command keeps its own reply: a command that fails in Redis (a `ResponseError`, e.g. a script's error reply)
fails only its caller, while a connection fault (after redis-py's own retries) fails every command of its batch.
Commands are not transactional together and may run in any order relative to other batches, as separate commands
on separate pooled connections would.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT

MAX_BATCH = 256
"""Commands per pipeline at most: a larger backlog goes out as several batches, one after the other."""


class CommandBatcher:
    """Sends the commands queued meanwhile as one pipeline, one batch at a time."""

    def __init__(self, client: Redis, max_batch: int = MAX_BATCH) -> None:
        self._client = client
        self._max_batch = max_batch
        self._queued: list[tuple[tuple[EncodableT, ...], asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def execute(self, *args: EncodableT) -> Any:
        """Run one command (`args` as for `execute_command`) in the next batch and return its reply."""
        return await self._queue(args)

    async def execute_all(self, *commands: tuple[EncodableT, ...]) -> list[Any]:
        """Run `commands` in order in the same batch; their replies, or the first command's error."""
        replies = await asyncio.gather(*(self._queue(args) for args in commands), return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies

    def _queue(self, args: tuple[EncodableT, ...]) -> asyncio.Future[Any]:
        reply = asyncio.get_running_loop().create_future()
        self._queued.append((args, reply))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send())
        return reply

    async def _send(self) -> None:
        while self._queued:
            batch, self._queued = self._queued[: self._max_batch], self._queued[self._max_batch :]
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for args, _ in batch:
                        pipe.execute_command(*args)
                    replies = await pipe.execute(raise_on_error=False)
            except Exception as error:  # noqa: BLE001 - a fault of the whole batch goes to each of its callers
                for _, reply in batch:
                    if not reply.done():
                        reply.set_exception(error)
                continue
            except BaseException:  # cancelled (the loop is closing): so are the callers, sent or not
                for _, reply in batch + self._queued:
                    reply.cancel()
                self._queued = []
                raise
            for (_, reply), result in zip(batch, replies, strict=True):
                if reply.done():  # its caller was cancelled meanwhile
                    continue
                if isinstance(result, Exception):
                    reply.set_exception(result)
                else:
                    reply.set_result(result)
