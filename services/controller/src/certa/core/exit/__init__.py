"""The exit engine: when a probed chain of thought may stop (ALGORITHMS.md section 2b).

Pure parts only: probe traces (`trace`), the path cues that decide where probing can pay (`cues`), exit policies
over a probe history (`policy`), exact offline replay of a policy on recorded traces (`replay`), calibration to a
risk level (`calibration`) and the exit profiles it writes (`profile`).
"""
