"""The repository stands on its own: a bare clone, in an empty folder with nothing beside it, holds the data the
demo and the benches read by default, and every relative link of its Markdown resolves inside it. No tracked file
names the folder that sits beside the development checkout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
OUTSIDE = ("../" + "shared", "/work/" + "shared")  # spelled in parts so that this file does not match itself
DATA_SETS = {"gsm8k_test.jsonl": 1319, "math500.jsonl": 500, "aime24.jsonl": 30, "amc23.jsonl": 40}
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of the current commit, alone in an empty folder."""
    target = tmp_path_factory.mktemp("empty") / "certa"
    _git("clone", "--quiet", "--no-hardlinks", str(REPO), str(target), cwd=target.parent)
    _git("checkout", "--quiet", _git("rev-parse", "HEAD").strip(), cwd=target)
    assert [path.name for path in target.parent.iterdir()] == ["certa"]
    return target


def _defaults_in(clone: Path) -> dict[str, str]:
    """The --data default of the demo and the benches, as the clone's own code computes it."""
    script = (
        "import json, certa.cli, certa_bench.cli\n"
        "commands = {'certa demo': (certa.cli, 'demo'), 'certa-bench dynasor': (certa_bench.cli, 'dynasor'),\n"
        "            'certa-bench consistency': (certa_bench.cli, 'consistency')}\n"
        "print(json.dumps({name: str(cli._parser().parse_args([command]).data)\n"
        "                  for name, (cli, command) in commands.items()}))"
    )
    env = {key: value for key, value in os.environ.items() if key != "CERTA_DATA_DIR"}
    env["PYTHONPATH"] = os.pathsep.join(
        str(clone / path / "src") for path in ("services/controller", "services/bench", "clients/python")
    )
    imported = subprocess.run(
        [sys.executable, "-c", script], cwd=clone.parent, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(imported.stdout)


def test_the_demo_and_bench_data_are_in_the_clone(clone: Path) -> None:
    defaults = _defaults_in(clone)
    for command, path in defaults.items():
        assert Path(path) == clone / "data" / "gsm8k_test.jsonl", command
    for name, rows in DATA_SETS.items():
        lines = (clone / "data" / name).read_text().splitlines()
        assert len(lines) == rows, name
        assert all(json.loads(line).get("question") or json.loads(line).get("problem") for line in lines)
    readme = (clone / "data" / "README.md").read_text()
    assert all(name in readme for name in DATA_SETS) and "MIT" in readme
    assert (clone / "data" / "LICENSES.md").read_text().count("Permission is hereby granted") == 4


def _markdown_files(root: Path) -> Iterator[Path]:
    for name in _git("ls-files", "*.md", cwd=root).splitlines():
        yield root / name


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(markdown: str) -> set[str]:
    return {_slug(line.lstrip("#")) for line in FENCE.sub("", markdown).splitlines() if line.startswith("#")}


def _links(markdown: str) -> list[str]:
    text = FENCE.sub("", markdown)
    return LINK.findall(text) + REFERENCE.findall(text)


def test_every_relative_markdown_link_resolves_in_the_clone(clone: Path) -> None:
    files = list(_markdown_files(clone))
    assert clone / "README.md" in files and clone / "data" / "README.md" in files
    broken = []
    for markdown_file in files:
        markdown = markdown_file.read_text()
        for link in _links(markdown):
            if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # https:, mailto:
                continue
            path, _, anchor = link.partition("#")
            target = (markdown_file.parent / path).resolve() if path else markdown_file
            where = f"{markdown_file.relative_to(clone)}: {link}"
            if not target.is_relative_to(clone) or not target.exists():
                broken.append(where)
            elif anchor and target.suffix == ".md" and anchor not in _anchors(target.read_text()):
                broken.append(f"{where} (no such heading)")
    assert not broken


def test_the_link_checker_sees_links_and_headings() -> None:
    markdown = "# A title, with `code`\n[x](data/README.md#a-title-with-code) [y]: ../elsewhere.md\n[z]: docs/a.md\n"
    assert _links(markdown) == ["data/README.md#a-title-with-code", "docs/a.md"]
    assert _anchors(markdown) == {"a-title-with-code"}


def test_no_tracked_file_reaches_outside_the_repository() -> None:
    for outside in OUTSIDE:
        assert _grep(outside) == []


def _grep(text: str) -> list[str]:
    result = subprocess.run(
        ["git", "grep", "-n", "-I", "-F", text], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert result.returncode in (0, 1), result.stderr
    return result.stdout.splitlines()
