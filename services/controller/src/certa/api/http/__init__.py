"""The OpenAI-compatible HTTP API: a second door beside the gRPC one, onto the same `SolveService`."""

from certa.api.http.app import OpenAiApi
from certa.api.http.listener import HttpListener

__all__ = ["HttpListener", "OpenAiApi"]
