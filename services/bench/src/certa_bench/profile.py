"""A sampling profile of a running process with py-spy, and its top entries.

`make bench-load BENCH_LOAD_ARGS="--profile bench-results/controller.profile"` records the controller during the
measured load run (`py-spy record --format raw`: one line per distinct stack, `frame;frame;... count`);
`python -m certa_bench.profile FILE` prints the functions with the largest share of samples, inclusive (the
function or anything it called) and self (the function itself). py-spy must be able to attach (root, or
`ptrace_scope` 0).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path


class Profiler:
    """`py-spy record` attached to `pid` until `stop()`."""

    def __init__(self, pid: int, out: Path, rate_hz: int = 100) -> None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        out.parent.mkdir(parents=True, exist_ok=True)
        self.out = out
        self._process = subprocess.Popen(
            [py_spy, "record", "--pid", str(pid), "--rate", str(rate_hz), "--format", "raw", "--output", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
            self._process.wait(timeout=30)


def function_of(frame: str) -> str:
    """`name (path/to/module.py:123)` -> `name (module.py)`: one entry per function, whatever the line."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1].split(':')[0].rstrip(')')})" if where else name


def top(raw: str, limit: int = 20) -> tuple[int, list[tuple[str, float, float]]]:
    """Samples in a raw py-spy profile and its `limit` heaviest functions: (name, inclusive share, self share)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        weight = int(count)
        samples += weight
        frames = [function_of(frame) for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += weight
        own[frames[-1]] += weight
    ranked = sorted(inclusive, key=lambda frame: -inclusive[frame])[:limit]
    return samples, [(frame, inclusive[frame] / samples, own[frame] / samples) for frame in ranked]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m certa_bench.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", help="a raw py-spy profile (py-spy record --format raw)")
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args(argv)
    samples, entries = top(Path(args.profile).read_text(), args.limit)
    print(f"{samples} samples; inclusive / self share of the samples")
    for frame, inclusive, own in entries:
        print(f"  {100 * inclusive:5.1f} %  {100 * own:5.1f} %  {frame}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
