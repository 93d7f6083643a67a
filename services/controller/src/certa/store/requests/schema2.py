"""A report as schema 2 stored it, read by this release so it serves and resumes what older replicas wrote.

Schema 2 kept the strategy result's fields copied next to the run's accounting, and marked an interrupted run by
`complete` False, an empty answer and a stop reason of `cancelled` or none. `Schema2Report` has that layout, field
for field (`certa.store.requests.values` reads it the way it reads any stored value); `upgraded` is the report it
stands for. Drop it when no release in service writes schema 2.
"""

from __future__ import annotations

from dataclasses import dataclass

from certa.core.report import Interrupted, SolveReport, Usage
from certa.core.types import AnswerClass, BatchTotals, PathResult, ProbeRecord, Round, StopReason, StrategyResult

VERSION = "2"


@dataclass(frozen=True)
class Schema2Report:
    answer: str
    stop_reason: StopReason | None
    text: str
    usage: Usage
    probes: tuple[ProbeRecord, ...]
    samples: tuple[PathResult, ...]
    answer_classes: tuple[AnswerClass, ...]
    wall_time_s: float
    token_budget: int
    complete: bool
    rounds: tuple[Round, ...] = ()
    stop_detail: str = ""
    batch: BatchTotals | None = None

    def upgraded(self) -> SolveReport:
        outcome: StrategyResult | Interrupted
        if self.complete and self.stop_reason is not None:
            outcome = StrategyResult(
                answer=self.answer,
                stop_reason=self.stop_reason,
                text=self.text,
                samples=self.samples,
                answer_classes=self.answer_classes,
                rounds=self.rounds,
                stop_detail=self.stop_detail,
                batch=self.batch,
            )
        else:
            outcome = Interrupted(self.text, cancelled=self.stop_reason is StopReason.CANCELLED)
        return SolveReport(outcome, self.usage, self.probes, self.wall_time_s, self.token_budget)
