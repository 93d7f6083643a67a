"""The recorder's heartbeat renewal: a write since the last renewal extended the lease already, so the renewal then
only refreshes the sweep's index; without a write it extends the lease."""

from __future__ import annotations

import pytest

from certa.core.types import FinishReason, Outcome, Segment
from certa.runtime.journal import Recorder, Reply, ReplyKind
from certa.store.requests.memory import MemoryStore
from certa.store.requests.port import RequestKey, RequestRecord

pytestmark = pytest.mark.unit


class RenewalsStore(MemoryStore):
    """Keeps the `lease_extended` flag of every renewal."""

    def __init__(self) -> None:
        super().__init__()
        self.renewals: list[bool] = []

    async def renew(self, key: RequestKey, owner: str, *, lease_extended: bool = False) -> bool:
        self.renewals.append(lease_extended)
        return await super().renew(key, owner, lease_extended=lease_extended)


async def test_a_renewal_after_a_checkpoint_says_the_lease_was_extended_once() -> None:
    store = RenewalsStore()
    key = RequestKey("acme", "heartbeat")
    await store.create(RequestRecord(key, "f", b"{}", "prompt", "plain", "scripted", "m", 1.0, 2.0), "replica-a")
    recorder = Recorder(store, key, "replica-a")
    await recorder.renew()
    await recorder.checkpoint(Reply(ReplyKind.WAIT, 0, Outcome(Segment("abc"), 3, FinishReason.LENGTH)))
    await recorder.renew()
    await recorder.renew()
    await recorder.close()
    assert store.renewals == [False, True, False]
