"""The Redis adapter of the state store (`redis.asyncio`), for standalone Redis, Sentinel-managed or Cluster.

Keys of one request share a hash tag, `PREFIX:{TENANT/ID}:…`, so its Lua scripts touch a single slot in a
cluster: `:meta` (hash: the record, see `certa.store.requests.codec`), `:lease` (string: owner, with an expiry),
`:journal` (list) and `:events` (stream). `PREFIX:inflight` (sorted set: request → lease expiry in ms) lets a sweep
find requests whose owner died; it is only a hint, written outside the scripts, since the claim itself re-checks
the lease atomically, and it expires `state_ttl_s` after the last request was added or renewed. While a request
runs its keys expire `state_ttl_s` after the last write; once it finished, the record (with the result) lives
`result_ttl_s`, the events `state_ttl_s`, and the journal is gone (a finished request is never resumed; the record
keeps its length as `journal_entries`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.typing import EncodableT

from certa.core.errors import CorruptState, LeaseLost, StoreUnavailable
from certa.store.redis_batch import CommandBatcher
from certa.store.requests.codec import SCHEMA_VERSION, read_request, request_fields, writes_of
from certa.store.requests.port import (
    Append,
    Claim,
    Created,
    Existing,
    Finish,
    RequestKey,
    RequestRecord,
    Status,
    StoredRequest,
    StreamEntry,
)

T = TypeVar("T")

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
"""

# Fencing shared by append, renew and finish: the caller must hold the lease of a running request.
_FENCE = """
local function fence()
  if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 'lease of another replica, or expired' end
  local status = redis.call('HGET', KEYS[1], 'status')
  if status ~= 'running' then return 'request is ' .. tostring(status) end
  return nil
end
local function touch(ttl)
  for i = 1, 4 do if i ~= 2 then redis.call('PEXPIRE', KEYS[i], ttl) end end
end
"""

# ARGV: owner, lease_ms, state_ttl_ms, write, n_journal, n_events, n_checkpointed, has_summary, summary,
#       summary's schema version, journal entries..., events...
_APPEND = (
    _FENCE
    + """
local write = tonumber(ARGV[4])
local done = tonumber(redis.call('HGET', KEYS[1], 'writes') or '0')
if write <= done then return redis.call('HGET', KEYS[1], 'cancel') == '1' and 1 or 0 end
local problem = fence()
if problem then return redis.error_reply('LEASE_LOST ' .. problem) end
if write ~= done + 1 then return redis.error_reply('WRITE_GAP expected write ' .. (done + 1) .. ', got ' .. write) end
local n_journal, n_events, n_checkpointed = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local checkpoint = nil
if n_journal > 0 and n_checkpointed == 0 then
  local last = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)
  checkpoint = last[1] and last[1][1] or '0-0'
end
local at = 11
for i = 1, n_journal do redis.call('RPUSH', KEYS[3], ARGV[at]); at = at + 1 end
for i = 1, n_events do
  local id = redis.call('XADD', KEYS[4], '*', 'e', ARGV[at]); at = at + 1
  if n_journal > 0 and i == n_checkpointed then checkpoint = id end
end
if checkpoint then redis.call('HSET', KEYS[1], 'checkpoint_event', checkpoint) end
if ARGV[8] == '1' then redis.call('HSET', KEYS[1], 'summary', ARGV[9], 'v', ARGV[10]) end
redis.call('HSET', KEYS[1], 'writes', write)
touch(ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return redis.call('HGET', KEYS[1], 'cancel') == '1' and 1 or 0
"""
)

# ARGV: owner, lease_ms, state_ttl_ms
_RENEW = (
    _FENCE
    + """
local problem = fence()
if problem then return redis.error_reply('LEASE_LOST ' .. problem) end
touch(ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return redis.call('HGET', KEYS[1], 'cancel') == '1' and 1 or 0
"""
)

# ARGV: owner, state_ttl_ms, result_ttl_ms, write, status, summary, failure_kind, failure_message, summary's schema
#       version
_FINISH = (
    _FENCE
    + """
local write = tonumber(ARGV[4])
if write <= tonumber(redis.call('HGET', KEYS[1], 'writes') or '0') then return 1 end
local problem = fence()
if problem then return redis.error_reply('LEASE_LOST ' .. problem) end
redis.call('XADD', KEYS[4], '*', 'e', '')
redis.call('HSET', KEYS[1], 'status', ARGV[5], 'summary', ARGV[6], 'v', ARGV[9], 'writes', write,
  'journal_entries', redis.call('LLEN', KEYS[3]))
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'failure_kind', ARGV[7], 'failure_message', ARGV[8]) end
redis.call('DEL', KEYS[2], KEYS[3])
touch(ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
)

# ARGV: owner, lease_ms, state_ttl_ms. Returns 1 when claimed, 0 otherwise.
_CLAIM = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2], 'NX') == false then return 0 end
redis.call('HINCRBY', KEYS[1], 'attempt', 1)
local checkpoint = redis.call('HGET', KEYS[1], 'checkpoint_event') or '0-0'
for _, entry in ipairs(redis.call('XRANGE', KEYS[4], '(' .. checkpoint, '+')) do
  redis.call('XDEL', KEYS[4], entry[1])
end
for i = 1, 4 do if i ~= 2 then redis.call('PEXPIRE', KEYS[i], ARGV[3]) end end
return 1
"""

# ARGV: attempt, deadline_at, state_ttl_ms. Returns 1 when the failed attempt was reopened, 0 otherwise.
_REOPEN = """
if redis.call('HGET', KEYS[1], 'status') ~= 'failed' then return 0 end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'deadline_at', ARGV[2], 'summary', '')
redis.call('HDEL', KEYS[1], 'failure_kind', 'failure_message', 'cancel', 'checkpoint_event')
redis.call('DEL', KEYS[3], KEYS[4])
for i = 1, 4 do if i ~= 2 then redis.call('PEXPIRE', KEYS[i], ARGV[3]) end end
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) return 1 end
return 0
"""

_CANCEL = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'running' then redis.call('HSET', KEYS[1], 'cancel', '1') end
return status
"""


class RedisStore:
    name = "redis"

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "certa",
        lease_s: float = 10.0,
        state_ttl_s: float = 3600.0,
        result_ttl_s: float = 86400.0,
        observe: Callable[[str, float], None] | None = None,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._lease_ms = int(lease_s * 1000)
        self._state_ttl_ms = int(state_ttl_s * 1000)
        self._result_ttl_ms = int(result_ttl_s * 1000)
        self._observe = observe or (lambda operation, seconds: None)
        self._batch = CommandBatcher(client)
        self._scripts = {
            name: client.register_script(source)
            for name, source in {
                "create": _CREATE,
                "append": _APPEND,
                "renew": _RENEW,
                "finish": _FINISH,
                "claim": _CLAIM,
                "reopen": _REOPEN,
                "release": _RELEASE,
                "cancel": _CANCEL,
            }.items()
        }

    def keys(self, key: RequestKey) -> list[str]:
        base = f"{self._prefix}:{{{key}}}"
        return [f"{base}:meta", f"{base}:lease", f"{base}:journal", f"{base}:events"]

    @property
    def _index(self) -> str:
        return f"{self._prefix}:inflight"

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def client(self) -> Redis:
        return self._redis

    async def call(self, operation: str, key: RequestKey | None, action: Callable[[], Awaitable[T]]) -> T:
        """Run one Redis operation: its faults become Certa errors, its latency is observed."""
        started = time.perf_counter()
        try:
            return await action()
        except redis_errors.ResponseError as error:
            message = str(error)
            if "LEASE_LOST" in message:
                raise LeaseLost(f"request {key}: {message.split('LEASE_LOST', 1)[1].strip()}") from None
            if "WRONGTYPE" in message or "WRITE_GAP" in message:
                label = self.keys(key)[0] if key is not None else self._index
                raise CorruptState(label, message) from None
            raise StoreUnavailable(f"redis refused {operation}: {message}") from error
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as error:
            raise StoreUnavailable(f"redis unreachable during {operation}: {error}") from error
        except redis_errors.RedisError as error:
            raise StoreUnavailable(f"redis error during {operation}: {error}") from error
        finally:
            self._observe(operation, time.perf_counter() - started)

    async def _eval(self, name: str, keys: list[str], args: Sequence[EncodableT]) -> Any:
        """Run one of the store's scripts in the next command batch; load it first if Redis lost it (a restart)."""
        script = self._scripts[name]
        try:
            return await self._batch.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except redis_errors.NoScriptError:
            await self._redis.script_load(script.script)
            return await self._batch.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    async def _index_lease(self, key: RequestKey, expires_ms: int) -> None:
        await self._batch.execute_all(
            ("ZADD", self._index, expires_ms, str(key)), ("PEXPIRE", self._index, self._state_ttl_ms)
        )

    async def command(self, operation: str, *args: EncodableT) -> Any:
        """One Redis command (`args` as for `execute_command`) in the store's next batch, its faults mapped as
        `call` maps them (for the other adapters sharing this store's Redis)."""
        return await self.call(operation, None, lambda: self._batch.execute(*args))

    async def commands(self, operation: str, *commands: tuple[EncodableT, ...]) -> list[Any]:
        """`commands` in order in the store's next batch (not a transaction), as `command` runs one."""
        return await self.call(operation, None, lambda: self._batch.execute_all(*commands))

    async def ping(self) -> None:
        await self.call("ping", None, lambda: cast(Awaitable[bool], self._redis.ping()))

    async def create(self, request: RequestRecord, owner: str) -> Created | Existing:
        keys = self.keys(request.key)
        written = request_fields(request)
        fields = [item for pair in written.items() for item in pair]

        async def run() -> Any:
            created = await self._eval("create", keys[:2], [owner, self._lease_ms, self._state_ttl_ms, *fields])
            if created:
                await self._index_lease(request.key, self._now_ms() + self._lease_ms)
            return created

        if await self.call("create", request.key, run):
            return Created(read_request(keys[0], request.key, written, owner))  # as written: no need to read it back
        stored = await self.read(request.key)
        if stored is None:
            raise StoreUnavailable(f"request {request.key} vanished right after it was found (evicted?)")
        return Existing(stored)

    async def read(self, key: RequestKey) -> StoredRequest | None:
        meta, lease = self.keys(key)[:2]

        fields, owner = await self.call("read", key, lambda: self._batch.execute_all(("HGETALL", meta), ("GET", lease)))
        if not fields:
            return None
        return read_request(meta, key, fields, owner.decode() if owner else "")

    async def holder(self, key: RequestKey) -> tuple[Status, str] | None:
        meta, lease = self.keys(key)[:2]

        status, owner = await self.call(
            "holder", key, lambda: self._batch.execute_all(("HGET", meta, "status"), ("GET", lease))
        )
        if status is None:
            return None
        try:
            return Status(status.decode()), owner.decode() if owner else ""
        except ValueError:
            raise CorruptState(meta, f"unknown status {status!r}") from None

    async def claim(self, key: RequestKey, owner: str) -> Claim | None:
        keys = self.keys(key)
        claimed = await self.call(
            "claim",
            key,
            lambda: self._eval("claim", keys, [owner, self._lease_ms, self._state_ttl_ms]),
        )
        if not claimed:
            return None

        async def load() -> tuple[Any, Any]:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys[0])
                pipe.lrange(keys[2], 0, -1)
                fields, journal = await pipe.execute()
            await self._index_lease(key, self._now_ms() + self._lease_ms)
            return fields, journal

        fields, journal = await self.call("claim", key, load)
        request = read_request(keys[0], key, fields, owner)
        return Claim(request=request, journal=journal, writes=writes_of(keys[0], fields))

    async def append(self, key: RequestKey, owner: str, append: Append) -> bool:
        summary = append.summary
        args = [
            owner,
            self._lease_ms,
            self._state_ttl_ms,
            append.write,
            len(append.journal),
            len(append.events),
            append.checkpointed_events,
            1 if summary is not None else 0,
            summary or b"",
            SCHEMA_VERSION,
            *append.journal,
            *append.events,
        ]
        cancel = await self.call("append", key, lambda: self._eval("append", self.keys(key), args))
        return bool(cancel)

    async def renew(self, key: RequestKey, owner: str, *, lease_extended: bool = False) -> bool:
        async def run() -> Any:
            cancel = False
            if not lease_extended:
                cancel = await self._eval("renew", self.keys(key), [owner, self._lease_ms, self._state_ttl_ms])
            await self._index_lease(key, self._now_ms() + self._lease_ms)
            return cancel

        return bool(await self.call("renew", key, run))

    async def finish(self, key: RequestKey, owner: str, finish: Finish) -> None:
        failure = finish.failure
        args: list[str | int | bytes] = [
            owner,
            self._state_ttl_ms,
            self._result_ttl_ms,
            finish.write,
            finish.status.value,
            finish.summary,
            failure.kind if failure else "",
            failure.message if failure else "",
            SCHEMA_VERSION,
        ]

        async def run() -> None:
            await self._eval("finish", self.keys(key), args)
            await self._batch.execute("ZREM", self._index, str(key))

        await self.call("finish", key, run)

    async def release(self, key: RequestKey, owner: str) -> None:
        async def run() -> None:
            if await self._eval("release", self.keys(key), [owner]):
                await self._index_lease(key, 0)

        await self.call("release", key, run)

    async def request_cancel(self, key: RequestKey) -> Status | None:
        meta = self.keys(key)[0]
        status = await self.call("cancel", key, lambda: self._eval("cancel", [meta], []))
        if status is None:
            return None
        try:
            return Status(status.decode())
        except ValueError:
            raise CorruptState(meta, f"unknown status {status!r}") from None

    async def events(self, key: RequestKey, after: str) -> list[StreamEntry]:
        stream = self.keys(key)[3]
        start = f"({after}" if after else "-"
        entries = await self.call("events", key, lambda: self._redis.xrange(stream, start, "+", count=1000))
        result = []
        for cursor, fields in entries:
            if b"e" not in fields:
                raise CorruptState(stream, f"stream entry {cursor!r} has no event field")
            result.append(StreamEntry(cursor.decode(), fields[b"e"]))
        return result

    async def reopen(self, key: RequestKey, attempt: int, deadline_at: float) -> bool:
        keys = self.keys(key)
        args: list[int | str] = [attempt, repr(deadline_at), self._state_ttl_ms]
        reopened = await self.call("reopen", key, lambda: self._eval("reopen", keys, args))
        if reopened:
            await self.call("reopen", key, lambda: self._index_lease(key, self._now_ms()))
        return bool(reopened)

    async def orphans(self, limit: int) -> list[RequestKey]:
        members = await self.call(
            "orphans",
            None,
            lambda: self._redis.zrangebyscore(self._index, "-inf", self._now_ms(), start=0, num=limit),
        )
        return [RequestKey.parse(member.decode()) for member in members]

    async def forget_orphan(self, key: RequestKey) -> None:
        """Drop a finished or vanished request from the sweep's index."""
        await self.call("orphans", key, lambda: self._redis.zrem(self._index, str(key)))

    async def close(self) -> None:
        await self._redis.aclose()

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)
