"""Which streamed text a client may be sent: only text the returned path will contain.

A one-path strategy streams its path as it is generated. Dynasor-CoT's fixed rule generates the next chunk while it
probes the last one, and an early exit cancels that chunk: its text was streamed but is not part of the answer. So
for the fixed rule, text is released once a probe confirms the path reached past it (one chunk behind, as the answer
itself is). Plain chain of thought and preset auto release text at once: auto starts the next chunk only after the
probe's decision, so every chunk it generates is part of the answer. Strategies with several samples stream nothing
until the end (which sample's text is the answer is only known then). At the end, `rest` is what the final text adds
to what was released (for an early exit: the answer).
"""

from __future__ import annotations

import logging

from certa.api.validation import is_auto_preset
from certa.core.report import Resumed, RuntimeEvent, TextDelta
from certa.core.types import ProbeRecord
from certa.v1 import reasoning_pb2 as pb

log = logging.getLogger(__name__)


class EventText:
    def __init__(self, strategy: pb.Strategy) -> None:
        kind = strategy.WhichOneof("kind")
        self._streams = kind in ("plain", "dynasor_cot")
        self._waits_for_probes = kind == "dynasor_cot" and not is_auto_preset(strategy.dynasor_cot)
        self._text = ""  # sample 0's path as streamed
        self._marks: list[tuple[int, int]] = []  # (path tokens, characters) after each delta
        self._released = 0  # characters sent

    def feed(self, event: RuntimeEvent) -> str:
        """The text this event lets through ("" for none)."""
        if not self._streams:
            return ""
        if isinstance(event, TextDelta) and event.sample_index == 0:
            self._text += event.text
            self._marks.append((event.path_tokens, len(self._text)))
            return "" if self._waits_for_probes else self._release(len(self._text))
        if isinstance(event, ProbeRecord) and event.sample_index == 0:
            reached = max((chars for tokens, chars in self._marks if tokens <= event.position_tokens), default=0)
            return self._release(reached)
        if isinstance(event, Resumed):  # text past the checkpoint is generated again
            kept = next((path.text_chars for path in event.paths if path.sample_index == 0), 0)
            self._text = self._text[:kept]
            self._marks = [(tokens, chars) for tokens, chars in self._marks if chars <= kept]
        return ""

    def _release(self, upto: int) -> str:
        if upto <= self._released:
            return ""
        released, self._released = self._text[self._released : upto], upto
        return released

    def rest(self, final_text: str) -> str:
        """What the final text adds to the text released so far."""
        sent = self._text[: self._released]
        if not final_text.startswith(sent):
            log.warning("the final text does not continue the streamed text; sending it after it")
            return final_text
        return final_text[len(sent) :]
