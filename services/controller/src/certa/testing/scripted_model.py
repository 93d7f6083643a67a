"""A deterministic stand-in for a language model, for tests and demos without weights.

The same script drives the in-process fake backend (`certa.testing.scripted_backend`) and the scripted
TensorRT-LLM-shaped models that tests serve from a real Triton server, so both tell the same story.

* Tokens are Unicode code points: token id = `ord(char)`, end id = 0. Tokenising and detokenising are exact.
* A **path** continues the script: the model finds the longest suffix of the prompt that is a prefix of the
  script and emits the characters that follow; it finishes (end token) when the script is exhausted.
* A **probe** is a prompt ending in `\\boxed{`: the model answers with the latest number the path has reached
  so far, hesitantly ("wait") before `confident_after` characters of the path, confidently after, followed by `}`.
  This reproduces the failure mode of probing a small model: early probes repeat intermediate numbers.
* Directives inside the prompt change behaviour: `[[slow:SECONDS]]` sleeps that long per token,
  `[[fail-after:N]]` fails once the path reaches N tokens (`failure_offset` says where, within one call),
  `[[answer:X]]` makes X the final answer, `[[vote:A,B,C]]` makes the final answer depend on the sampling seed
  (answer = list[seed % len]), `[[confident-after:N]]` moves the point where probes become confident.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

END_ID = 0

DEFAULT_SCRIPT = (
    "Janet's ducks lay 16 eggs per day. She eats 3 for breakfast, so 16 - 3 = 13 are left. "
    "She bakes muffins with 4, so 13 - 4 = 9 eggs remain. She sells each egg for $2, "
    "so she makes 9 * 2 = 18 dollars every day. The answer is \\boxed{ANSWER}."
)
DEFAULT_ANSWER = "18"

_DIRECTIVE = re.compile(r"\[\[(slow|fail-after|answer|vote|confident-after):([^\]]*)\]\]")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Directives:
    slow_s: float = 0.0
    fail_after: int | None = None
    answer: str = DEFAULT_ANSWER
    votes: tuple[str, ...] = ()
    confident_after: int | None = None

    @classmethod
    def parse(cls, prompt: str) -> Directives:
        found = dict(_DIRECTIVE.findall(prompt))
        return cls(
            slow_s=float(found.get("slow", 0.0)),
            fail_after=int(found["fail-after"]) if "fail-after" in found else None,
            answer=found.get("answer", DEFAULT_ANSWER),
            votes=tuple(v.strip() for v in found["vote"].split(",")) if "vote" in found else (),
            confident_after=int(found["confident-after"]) if "confident-after" in found else None,
        )


def encode(text: str) -> list[int]:
    return [ord(char) for char in text]


def decode(token_ids: list[int] | tuple[int, ...]) -> str:
    return "".join(chr(token) for token in token_ids if token != END_ID)


@dataclass(frozen=True)
class ScriptedModel:
    """Continues a fixed reasoning script; see the module docstring."""

    script_template: str = DEFAULT_SCRIPT

    def script(self, directives: Directives, seed: int | None) -> str:
        answer = directives.answer
        if directives.votes:
            answer = directives.votes[(seed or 0) % len(directives.votes)]
        return self.script_template.replace("ANSWER", answer)

    def completion(self, prompt: str, max_tokens: int, seed: int | None = None) -> tuple[str, bool]:
        """The text the model produces for `prompt` and whether it ended by itself (end token)."""
        directives = Directives.parse(prompt)
        script = self.script(directives, seed)
        if prompt.endswith("\\boxed{"):
            return self._probe_reply(prompt, script, directives)[:max_tokens], False
        done = _progress(prompt, script)
        text = script[done : done + max_tokens]
        return text, done + max_tokens > len(script)

    def failure_offset(self, prompt: str, seed: int | None = None) -> int | None:
        """How many tokens a call on `prompt` produces before `[[fail-after:N]]` makes it fail (None: never).

        N counts path tokens, so a path continued chunk by chunk fails in the chunk that crosses N. Probes never fail.
        """
        directives = Directives.parse(prompt)
        if directives.fail_after is None or prompt.endswith("\\boxed{"):
            return None
        return max(directives.fail_after - _progress(prompt, self.script(directives, seed)), 0)

    def _probe_reply(self, prompt: str, script: str, directives: Directives) -> str:
        body = prompt[: prompt.rfind("\\boxed{")]
        # The probe suffix follows the path; find how far the path got in the script.
        cut = body.rfind("...")
        done = _progress(body[:cut] if cut >= 0 else body, script)
        reached = script[:done]
        numbers = _NUMBER.findall(reached)
        if "\\boxed{" in reached:
            numbers.append(script[script.index("\\boxed{") + 7 : script.index("}", script.index("\\boxed{"))])
        latest = numbers[-1] if numbers else ""
        confident_after = directives.confident_after
        if confident_after is None:
            confident_after = len(script) // 2
        if done < confident_after:
            return f"wait, {latest}}}" if latest else "hmm}"
        return f"{latest}}}\n\\]"


def _progress(prompt: str, script: str) -> int:
    """Length of the longest script prefix the prompt ends with: the first place, from where the script could start
    to fit, that starts with the script's first character and runs as the script to the prompt's end."""
    start = max(len(prompt) - len(script), 0)
    while (start := prompt.find(script[:1], start)) >= 0:
        if script.startswith(prompt[start:]):
            return len(prompt) - start
        start += 1
    return 0
