"""The `certa` command as a user runs it (a subprocess) against a running controller: solve, get, cancel and batch,
results on stdout, and with --json every error as one JSON object on stderr with the status code."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CERTA = str(Path(sys.executable).parent / "certa")
QUESTION = "[[confident-after:200]] Janet?"
DYNASOR = ("--chunk-tokens", "16", "--threshold", "2", "--probe-tokens", "10")


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def error(self) -> dict[str, object]:
        """The one JSON object on stderr."""
        (line,) = self.err.splitlines()
        return json.loads(line)


async def certa(*args: str, stdin: str | None = None) -> Run:
    """Run the CLI without blocking the event loop the server runs on."""
    process = await asyncio.create_subprocess_exec(
        CERTA, *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin else None), timeout=120)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


async def test_solve_then_get_and_cancel_by_id(certa_address: str) -> None:
    solved = await certa("solve", "--json", "--address", certa_address, *DYNASOR, QUESTION)
    assert solved.code == 0, solved.err
    response = json.loads(solved.out)
    assert response["status"] == "SOLVE_STATUS_SUCCEEDED" and response["result"]["answer"] == "18"
    assert response["result"]["stop_reason"] == "STOP_REASON_CERTAIN"

    got = await certa("get", response["request_id"], "--json", "--address", certa_address)
    assert got.code == 0 and json.loads(got.out)["result"]["answer"] == "18"
    shown = await certa("get", response["request_id"], "--address", certa_address)
    assert "status: succeeded" in shown.out and "answer: 18" in shown.out

    cancelled = await certa("cancel", response["request_id"], "--json", "--address", certa_address)
    assert cancelled.code == 0 and json.loads(cancelled.out) == {"request_id": response["request_id"],
                                                                 "cancelled": False}


async def test_cancel_stops_a_running_solve(certa_address: str) -> None:
    solving = asyncio.ensure_future(certa("solve", "--json", "--strategy", "plain", "--request-id", "cli-cancel",
                                          "--address", certa_address, "[[slow:0.05]] cancel me"))
    await asyncio.sleep(1.5)
    running = await certa("get", "cli-cancel", "--json", "--address", certa_address)
    assert json.loads(running.out)["status"] == "SOLVE_STATUS_RUNNING"
    cancelled = await certa("cancel", "cli-cancel", "--address", certa_address)
    assert cancelled.code == 0 and "cli-cancel: cancelled" in cancelled.out
    solved = await solving
    assert solved.code == 0 and json.loads(solved.out)["status"] == "SOLVE_STATUS_CANCELLED"


async def test_batch_reads_json_lines_and_writes_one_result_per_question(certa_address: str, tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"id": "eggs", "question": "Janet?"}\n\n{"problem": "Janet, again?"}\n')
    batch = await certa("batch", str(questions), "--samples", "6", "--address", certa_address)
    assert batch.code == 0, batch.err
    results = [json.loads(line) for line in batch.out.splitlines()]
    assert sorted(result["id"] for result in results) == ["3", "eggs"]  # the id defaults to the line number
    assert all(result["result"]["answer"] == "18" and result["retire_reason"] for result in results)
    assert sum(len(result["result"]["samples"]) for result in results) <= 6
    assert "[1/2]" in batch.err and "[2/2]" in batch.err and "done: 2 questions (0 failed)" in batch.err

    from_stdin = await certa("batch", "-", "--json", "--samples", "6", "--address", certa_address,
                             stdin=questions.read_text())
    assert from_stdin.code == 0 and from_stdin.err == "" and len(from_stdin.out.splitlines()) == 2


@pytest.mark.parametrize(
    ("args", "code", "exit_code", "says"),
    [
        (("get", "no-such-request"), "NOT_FOUND", 1, "no-such-request"),
        (("solve", "--budget", "999999", "Q"), "INVALID_ARGUMENT", 1, "token_budget"),
        (("solve", "--strategy", "majority-vote", "--samples", "3", "Q"), "INVALID_ARGUMENT", 1, "temperature"),
        (("cancel",), "INVALID_ARGUMENT", 2, "ID"),
        (("solve", "--effort", "extreme", "Q"), "INVALID_ARGUMENT", 2, "--effort"),
        (("batch", "missing.jsonl"), "NOT_FOUND", 2, "missing.jsonl"),
        (("solve", "--client-cert", "c.pem", "Q"), "INVALID_ARGUMENT", 2, "client_key_file"),
    ],
)
async def test_with_json_every_error_is_one_json_object(
    certa_address: str, args: tuple[str, ...], code: str, exit_code: int, says: str
) -> None:
    run = await certa(*args, "--json", "--address", certa_address)
    assert run.code == exit_code and run.out == ""
    error = run.error()
    assert error["code"] == code and says in str(error["message"])


async def test_an_unreachable_controller_is_unavailable(tmp_path: Path) -> None:
    run = await certa("solve", "Q", "--json", "--address", "127.0.0.1:9")
    assert run.code == 1 and run.error()["code"] == "UNAVAILABLE"
    text = await certa("solve", "Q", "--address", "127.0.0.1:9")
    assert text.code == 1 and text.err.startswith("error: UNAVAILABLE: ")


async def test_a_bad_batch_file_names_the_line(tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"question": "fine"}\n{"question": 3}\n')
    run = await certa("batch", str(questions), "--json")
    assert run.code == 2 and run.error() == {
        "code": "INVALID_ARGUMENT", "message": f"{questions}:2: 'question' (or 'problem') must be a non-empty string"
    }


async def test_a_failed_solve_reports_its_partial_result(certa_address: str) -> None:
    run = await certa("solve", "--json", "--strategy", "plain", "--address", certa_address, "[[fail-after:70]] Q")
    error = run.error()
    assert run.code == 1 and error["code"] == "UNAVAILABLE"
    assert int(error["partial_result"]["usage"]["path_tokens"]) >= 70
