"""Test doubles that ship with Certa: a scripted model, an in-process backend driven by it, a synchronous strategy
harness for driving strategies with `gen.send()`, and launchers of a Redis server and of `certa serve` for tests and
benchmarks."""
