"""Preset auto in the API: risk and profile checked, the profile resolved from the server's settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from certa.api.validation import validate
from certa.config import BackendSpec, Settings, load_settings
from certa.core.errors import InvalidArgument
from certa.core.exit.calibration import Calibrated
from certa.core.exit.policy import ExitPolicy
from certa.core.exit.profile import ExitProfile, RiskLevel, profile_to_dict
from certa.core.strategies import DynasorConfig
from certa.exit_profiles import profile_book
from certa.v1 import reasoning_pb2 as pb

pytestmark = pytest.mark.unit

SETTINGS = Settings(backends=(BackendSpec("local", "triton://127.0.0.1:1"),))


def _request(**dynasor: object) -> pb.SolveRequest:
    message = pb.DynasorCot(preset=pb.DynasorCot.PRESET_AUTO, **dynasor)  # type: ignore[arg-type]
    return pb.SolveRequest(question="1 + 1?", strategy=pb.Strategy(dynasor_cot=message))


def _profile(name: str) -> ExitProfile:
    calibrated = Calibrated(ExitPolicy(min_confidence=0.9), 40, 3, 0, 0, 0.06, 900, 1000, 4)
    return ExitProfile(name, "m", "t", 0.1, 32, 16, (RiskLevel(0.1, calibrated, calibrated),), 0.1, "rec.jsonl")


def test_auto_uses_the_conservative_default_without_a_profile() -> None:
    spec = validate(_request(), SETTINGS, "r").strategy
    assert isinstance(spec, DynasorConfig) and spec.calibrated is not None
    assert spec.calibrated.profile.name == "conservative-default" and spec.calibrated.risk == 0.5


@pytest.mark.parametrize("risk", [0.0, -0.1, 0.6])
def test_risk_outside_the_range_is_invalid_argument_naming_field_and_range(risk: float) -> None:
    with pytest.raises(InvalidArgument) as error:
        validate(_request(risk=risk), SETTINGS, "r")
    assert error.value.field == "strategy.dynasor_cot.risk" and "(0, 0.5]" in str(error.value)


def test_unknown_profile_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument) as error:
        validate(_request(profile="nope"), SETTINGS, "r")
    assert error.value.field == "strategy.dynasor_cot.profile" and "unknown exit profile 'nope'" in str(error.value)


def test_knobs_of_the_reference_presets_do_not_apply_to_auto() -> None:
    with pytest.raises(InvalidArgument) as error:
        validate(_request(chunk_tokens=16), SETTINGS, "r")
    assert error.value.field == "strategy.dynasor_cot.chunk_tokens"
    with pytest.raises(InvalidArgument) as error:
        mid = pb.Strategy(dynasor_cot=pb.DynasorCot(preset=pb.DynasorCot.PRESET_MID, risk=0.1))
        validate(pb.SolveRequest(question="q", strategy=mid), SETTINGS, "r")
    assert error.value.field == "strategy.dynasor_cot.risk" and "only applies to preset auto" in str(error.value)


def test_the_default_is_auto_and_a_knob_of_the_fixed_rule_means_preset_mid() -> None:
    unset = validate(pb.SolveRequest(question="q"), SETTINGS, "r").strategy
    empty = validate(pb.SolveRequest(question="q", strategy=pb.Strategy(dynasor_cot=pb.DynasorCot())), SETTINGS, "r")
    with_risk = pb.Strategy(dynasor_cot=pb.DynasorCot(risk=0.05))
    risk = validate(pb.SolveRequest(question="q", strategy=with_risk), SETTINGS, "r").strategy
    for spec in (unset, empty.strategy, risk):
        assert isinstance(spec, DynasorConfig) and spec.calibrated is not None
        assert spec.calibrated.profile.name == "conservative-default"
    assert isinstance(risk, DynasorConfig) and risk.calibrated is not None
    assert risk.calibrated.risk == pytest.approx(0.05)
    knob = pb.Strategy(dynasor_cot=pb.DynasorCot(chunk_tokens=16))
    mid = validate(pb.SolveRequest(question="q", strategy=knob), SETTINGS, "r").strategy
    assert isinstance(mid, DynasorConfig) and mid.calibrated is None
    assert (mid.chunk_tokens, mid.certainty_threshold) == (16, 3)


def test_profiles_from_the_setting_by_name_and_as_the_server_default(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(profile_to_dict(_profile("mine"))))
    settings = load_settings({"CERTA_EXIT_PROFILES": str(tmp_path), "CERTA_EXIT_PROFILE": "mine",
                              "CERTA_BACKENDS": "local=triton://127.0.0.1:1", "CERTA_STORE": "memory",
                              "CERTA_AUTH_DISABLED": "true"})
    spec = validate(_request(risk=0.2), settings, "r").strategy
    assert isinstance(spec, DynasorConfig) and spec.calibrated is not None
    assert spec.calibrated.profile == _profile("mine") and spec.calibrated.risk == pytest.approx(0.2)
    assert (spec.chunk_tokens, spec.probe_tokens) == (32, 16)
    named = validate(_request(profile="conservative-default"), settings, "r").strategy
    assert isinstance(named, DynasorConfig) and named.calibrated is not None
    assert named.calibrated.profile.name == "conservative-default"


def test_a_malformed_profile_file_or_unknown_default_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InvalidArgument, match="is not an exit profile"):
        profile_book(str(tmp_path), "")
    with pytest.raises(InvalidArgument, match="unknown exit profile 'x'"):
        profile_book("", "x")
