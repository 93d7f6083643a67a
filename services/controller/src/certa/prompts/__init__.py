"""Turning a question into the prompt a model expects.

A question becomes one user message (question, blank line, the reasoning instruction) rendered with a Jinja2 chat
template, the way Hugging Face tokenizers render chat templates. `CERTA_PROMPT_TEMPLATE` chooses the template:
`auto` (the template the backend publishes for the model, else ChatML), `chatml`, `raw` (the message content as
is) or a path to a template file. A raw prompt in the request is sent unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from certa.core.errors import InvalidArgument

BUILTIN_TEMPLATES = ("chatml",)


def builtin_template(name: str) -> str:
    return resources.files(__package__).joinpath(f"{name}.jinja").read_text()


@lru_cache(maxsize=32)
def _compile(source: str):
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals["raise_exception"] = _raise_template_error
    return environment.from_string(source)


def _raise_template_error(message: str) -> None:
    raise TemplateError(message)


def render_chat(template_source: str, user_message: str) -> str:
    """Render one user message with a chat template, ending where the assistant's reply begins."""
    return render_messages(template_source, [{"role": "user", "content": user_message}])


def render_messages(template_source: str, messages: Sequence[Mapping[str, str]]) -> str:
    """Render a conversation (`role`, `content` per message) with a chat template, ending where the assistant's
    reply begins."""
    try:
        return str(
            _compile(template_source).render(
                messages=[dict(message) for message in messages],
                add_generation_prompt=True,
                bos_token="",
                eos_token="",
            )
        )
    except TemplateError as error:
        raise InvalidArgument("chat template", f"cannot render: {error}") from error


def resolve_template(setting: str, published: str | None) -> str | None:
    """The template source for a prompt-template setting; None means send the message content as is."""
    if setting == "raw":
        return None
    if setting == "auto":
        return published or builtin_template("chatml")
    if setting in BUILTIN_TEMPLATES:
        return builtin_template(setting)
    path = Path(setting)
    if not path.is_file():
        raise InvalidArgument(
            "CERTA_PROMPT_TEMPLATE", f"{setting!r} is not auto, raw, {', '.join(BUILTIN_TEMPLATES)} or a file"
        )
    return path.read_text()


def question_prompt(question: str, instruction: str, template_source: str | None) -> str:
    message = f"{question.strip()}\n\n{instruction}" if instruction else question.strip()
    return message if template_source is None else render_chat(template_source, message)


def prompt_template_id(instruction: str, template_source: str | None) -> str:
    """A short id of how questions become prompts (chat template + instruction), named in exit profiles."""
    digest = hashlib.sha256(f"{template_source or 'raw'}\0{instruction}".encode()).hexdigest()
    return f"prompt-{digest[:12]}"
