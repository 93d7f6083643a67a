"""Certa's research benchmarks (Dynasor-CoT presets, self-consistency budgets, allocation replays) and its load and
fault campaign: tools that measure the controller, kept out of the package that runs it."""
