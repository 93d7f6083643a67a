"""Builds the adapter a backend URL asks for."""

from __future__ import annotations

from certa.backends.call_metadata import MetadataProvider
from certa.backends.openai.backend import OpenAIBackend
from certa.backends.openai.options import OPENAI_SCHEMES
from certa.backends.port import Backend
from certa.backends.triton.backend import TritonBackend
from certa.backends.triton.options import TRITON_SCHEMES
from certa.backends.url_options import SETTING
from certa.config import BackendSpec
from certa.core.errors import InvalidArgument

SUPPORTED_SCHEMES = (*TRITON_SCHEMES, *OPENAI_SCHEMES)


def provider_name(spec: BackendSpec) -> str:
    """The kind of server behind the URL, as telemetry names it (`gen_ai.provider.name`): triton or openai."""
    return "triton" if spec.scheme in TRITON_SCHEMES else "openai"


def build_backend(
    spec: BackendSpec, *, connect_timeout_s: float, metadata_provider: MetadataProvider | None = None
) -> Backend:
    """The adapter for `spec.url`'s scheme; an unknown scheme is an `InvalidArgument` on `CERTA_BACKENDS`."""
    if spec.scheme in TRITON_SCHEMES:
        return TritonBackend(spec, connect_timeout_s=connect_timeout_s, metadata_provider=metadata_provider)
    if spec.scheme in OPENAI_SCHEMES:
        return OpenAIBackend(spec, connect_timeout_s=connect_timeout_s, metadata_provider=metadata_provider)
    raise InvalidArgument(
        SETTING,
        f"backend {spec.name!r} has URL {spec.url!r} with unsupported scheme {spec.scheme!r}; "
        f"supported: {', '.join(scheme + '://' for scheme in SUPPORTED_SCHEMES)}",
    )
