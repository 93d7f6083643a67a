"""Per-call metadata the controller forwards to model servers (e.g. W3C `traceparent` / `tracestate`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

MetadataProvider = Callable[[], Sequence[tuple[str, str]]]
"""Called once per server call; its pairs go out as gRPC call metadata or HTTP headers."""
