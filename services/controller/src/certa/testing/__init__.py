"""Test doubles that ship with Certa: a scripted model and an in-process backend driven by it."""
