"""`certa-bench exit`: the exit engine's bench, replayed from a checked-in recording in seconds.

The recording's first half calibrates preset auto at each risk level (`certa.core.exit.profile.calibrate_profile`,
exactly what `certa calibrate` writes); the second half is replayed with plain chain of thought, the reference
presets mid / high / crazy and auto at each level. Every row uses the same recorded paths, so they are compared on
identical greedy paths from one run (see docs/exit-engine.md on reproducibility). Wall time is replayed from the
recording's timed calls: the path's time up to an exit plus the probes a policy sends (a recording made on a busy
machine carries that machine's times).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from certa.core.exit.compare import REFERENCE_POLICIES, Row, compare, format_rows, profile_policy
from certa.core.exit.policy import ExitPolicy
from certa.core.exit.profile import calibrate_profile, profile_to_dict
from certa.exit_recording import halves, load_recording


def bench(recording: Path, alphas: Sequence[float], delta: float) -> tuple[list[Row], dict[str, object]]:
    traces = load_recording(recording)
    calibration, evaluation = halves(traces)
    first = traces[0]
    profile = calibrate_profile(
        calibration,
        name=first.model,
        model=first.model,
        template=first.template,
        alphas=alphas,
        delta=delta,
        chunk_tokens=min((p.position_tokens for t in traces for p in t.probes), default=32),
        probe_tokens=max((p.tokens for t in traces for p in t.probes), default=20),
        recording=f"{recording.name}, calibration half: {len(calibration)} questions",
    )
    policies: list[tuple[str, ExitPolicy | None]] = [*REFERENCE_POLICIES.items()]
    policies += [(f"auto@{alpha:g}", profile_policy(profile, alpha)) for alpha in sorted(alphas)]
    rows = compare(evaluation, policies)
    meta = {
        "recording": recording.name,
        "model": first.model,
        "template": first.template,
        "calibration_questions": len(calibration),
        "evaluation_questions": len(evaluation),
        "delta": delta,
        "profile": profile_to_dict(profile),
    }
    return rows, meta


def write_outputs(out: Path, rows: Sequence[Row], meta: dict[str, object]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "meta": meta,
        "rows": [
            {
                "policy": row.name,
                "rule": row.policy,
                **{key: value for key, value in asdict(row.summary).items() if key != "rows"},
                "tokens": row.summary.tokens,
                "accuracy": row.summary.accuracy,
            }
            for row in rows
        ],
    }
    stem = f"exit-bench-{meta['model']}"
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(report, indent=2))
    png_path = out / f"{stem}.png"
    _plot(rows, png_path, f"{meta['model']}: evaluation half ({meta['evaluation_questions']} questions), replayed")
    return [json_path, png_path]


def _plot(rows: Sequence[Row], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        summary = row.summary
        tokens = summary.tokens / summary.questions if summary.questions else 0.0
        axes.scatter(tokens, summary.accuracy * 100, marker="s" if row.name == "plain" else "o", s=60)
        axes.annotate(row.name, (tokens, summary.accuracy * 100), textcoords="offset points", xytext=(5, 5))
    axes.set_xlabel("mean tokens per question (path + probes)")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run(recording: Path, alphas: Sequence[float], delta: float, out: Path) -> int:
    rows, meta = bench(recording, alphas, delta)
    print(f"{recording.name}: calibrated on {meta['calibration_questions']} questions, "
          f"replayed on {meta['evaluation_questions']}")
    print(format_rows(rows))
    for path in write_outputs(out, rows, meta):
        print(f"wrote {path}")
    return 0
