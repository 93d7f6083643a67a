"""Answer extraction and maths-aware equivalence (ALGORITHMS.md section 1).

Equivalence uses Hugging Face's `math-verify` (LaTeX and plain expressions parsed to SymPy), so `1/2`, `0.5` and
`\\frac{1}{2}` are one answer. Its own timeouts rely on SIGALRM, which only works in the main thread, so they are
disabled. The work is bounded instead: answers longer than `MAX_SYMBOLIC_CHARS`, and parsed expressions that SymPy
could spend unbounded time on (more than `MAX_SYMBOLIC_NODES` nodes, powers with a non-numeric or huge exponent such
as `10^{10^{10}}`, factorials and other special functions of large arguments), are compared as normalised strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import sympy
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from certa.core.types import AnswerClass

BOXED = "\\boxed{"
MAX_SYMBOLIC_CHARS = 120
MAX_SYMBOLIC_NODES = 200
MAX_EXPONENT = 1000
MAX_FUNCTION_ARGUMENT = 100
_EXTRACTION = (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())


def _matching_brace(text: str, start: int) -> int:
    """Index of the `}` closing the group that starts at `start` (just after a `{`), or -1."""
    depth = 1
    for index in range(start, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return -1


def extract_boxed(text: str) -> str:
    """Content of the last complete `\\boxed{...}` in `text` (nested braces count), or "" when there is none."""
    position = text.rfind(BOXED)
    while position >= 0:
        start = position + len(BOXED)
        end = _matching_brace(text, start)
        if end >= 0:
            return text[start:end].strip()
        position = text.rfind(BOXED, 0, position)
    return ""


def extract_probe_answer(probe_text: str) -> str:
    """The answer in a probe's text, which starts inside `\\boxed{`: everything before the first unmatched `}`.

    No unmatched `}` means the probe did not finish an answer: "" (which never counts as agreement).
    """
    end = _matching_brace(probe_text, 0)
    return probe_text[:end].strip() if end >= 0 else ""


def extract_gsm8k_gold(solution: str) -> str:
    """GSM8K gold answer: the text after `#### `, with thousands separators removed."""
    _, sep, tail = solution.rpartition("#### ")
    return tail.strip().replace(",", "") if sep else ""


_SPACE = re.compile(r"\s+")
_TEXT_WRAPPER = re.compile(r"^\\(?:text|mathrm|textbf)\{(.*)\}$")


def normalise(answer: str) -> str:
    """A canonical string form used when symbolic comparison does not apply."""
    value = _SPACE.sub("", answer.strip().strip("$").rstrip("."))
    wrapped = _TEXT_WRAPPER.match(value)
    value = wrapped.group(1) if wrapped else value
    return value.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("{,}", "").lower()


def _bounded_exponent(exponent: sympy.Basic) -> bool:
    return bool(exponent.is_Symbol or (exponent.is_Number and abs(exponent) <= MAX_EXPONENT))


def _cheap(expression: object) -> bool:
    """Whether SymPy can compare `expression` in bounded time (see the module docstring)."""
    if not isinstance(expression, sympy.Basic):
        return True
    for count, node in enumerate(sympy.preorder_traversal(expression)):
        if count >= MAX_SYMBOLIC_NODES:
            return False
        if isinstance(node, sympy.Pow) and not _bounded_exponent(node.exp):
            return False
        if (
            isinstance(node, sympy.Function)
            and not isinstance(node, sympy.core.function.AppliedUndef)
            and any(arg.is_Number and abs(arg) > MAX_FUNCTION_ARGUMENT for arg in node.args)
        ):
            return False
    return True


@lru_cache(maxsize=4096)
def _parsed(answer: str) -> tuple[object, ...]:
    if len(answer) > MAX_SYMBOLIC_CHARS:
        return ()
    text = answer if answer.startswith("$") else f"${answer}$"
    parsed = tuple(parse(text, extraction_config=_EXTRACTION, parsing_timeout=None))
    return parsed if all(_cheap(expression) for expression in parsed) else ()


@lru_cache(maxsize=16384)
def equivalent(first: str, second: str) -> bool:
    """Whether two extracted answers are the same answer. Empty answers are never equivalent to anything."""
    if not first.strip() or not second.strip():
        return False
    if normalise(first) == normalise(second):
        return True
    left, right = _parsed(first), _parsed(second)
    if not left or not right:
        return False
    return bool(verify(list(left), list(right), timeout_seconds=None))


def group_answers(answers: Sequence[str]) -> tuple[AnswerClass, ...]:
    """Equivalence classes of the non-empty answers, largest first; ties keep the earliest class first.

    Each answer joins the first class whose representative it is equivalent to.
    """
    representatives: list[tuple[str, int]] = []
    counts: list[int] = []
    for index, answer in enumerate(answers):
        if not answer.strip():
            continue
        for class_index, (representative, _) in enumerate(representatives):
            if equivalent(answer, representative):
                counts[class_index] += 1
                break
        else:
            representatives.append((answer, index))
            counts.append(1)
    classes = [
        AnswerClass(answer=rep, count=count, first_sample=first)
        for (rep, first), count in zip(representatives, counts, strict=True)
    ]
    return tuple(sorted(classes, key=lambda c: (-c.count, c.first_sample)))
