"""Preset auto's spec (its whole exit profile) and a calibrated path's traces are stored and read back exactly."""

from __future__ import annotations

import pytest

from certa.core.exit.profile import CONSERVATIVE_DEFAULT
from certa.core.exit.trace import ProbeTrace
from certa.core.report import SolveReport, Usage
from certa.core.spec import SolveSpec
from certa.core.strategies import DynasorConfig
from certa.core.strategies.calibrated import CalibratedExit
from certa.core.types import PathResult, ProbeRecord, SamplingParams, StopReason, StrategyResult
from certa.store.requests import values

pytestmark = pytest.mark.unit


def test_an_auto_spec_round_trips() -> None:
    spec = SolveSpec("r", "q", False, DynasorConfig.auto(CalibratedExit(CONSERVATIVE_DEFAULT, 0.1)),
                     SamplingParams(), 512, 30.0, "local", "m")
    assert values.decode(values.encode(spec), SolveSpec, "k") == spec


def test_a_report_with_traces_and_probe_confidence_round_trips() -> None:
    trace = ProbeTrace(64, "answer", "18", (-0.01, -0.02), False, 4, True, True, True)
    probe = ProbeRecord(0, 64, "18", True, 4, confidence=0.985, trigger="answer")
    path = PathResult("18", StopReason.CERTAIN, "...", 64, 4, (probe,), detail="exit profile p", traces=(trace,))
    result = StrategyResult("18", StopReason.CERTAIN, "...", (path,), stop_detail="exit profile p")
    report = SolveReport(result, Usage(path_tokens=64, probe_tokens=4), (probe,), 1.5, 512)
    assert values.decode(values.encode(report), SolveReport, "k") == report
