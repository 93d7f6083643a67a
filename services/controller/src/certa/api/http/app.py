"""The OpenAI-compatible HTTP door (aiohttp): `POST /v1/chat/completions`, `POST /v1/completions`, `GET /v1/models`,
`GET /healthz` (liveness), `GET /readyz` (readiness, the gRPC readiness check's verdict).

Like the gRPC servicer it authenticates (`Authorization: Bearer`, `certa.api.auth`), validates through
`certa.api.validation`, and runs through `SolveService`. An `Idempotency-Key` header is the request id: a retry
with it attaches to the same request, and the request keeps running when the client leaves. Without one, a
client that disconnects (mid-stream or while waiting) cancels the run and its backend calls. The response's
`x-request-id` header is Certa's id.

Every request has an HTTP SERVER span (a child of the caller's `traceparent`), the run's `certa.solve` span under
it, and one access line (`certa.api.http.access`); the handlers name the request's tenant, id, strategy and tokens
for them and for the request's log lines (`certa.observability.logs`).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web
from openai.types.chat.chat_completion_chunk import ChoiceDelta

from certa.api.auth import Authenticator
from certa.api.http import wire
from certa.api.http.access import HttpCall, access_middleware, current_call, note_response
from certa.api.http.catalogue import ModelCatalogue
from certa.api.http.errors import BodyTooLarge, RequestCancelled, error_json, error_response, http_error
from certa.api.http.parsing import ParsedRequest, load_body, parse_chat, parse_completion
from certa.api.http.streaming import EventText
from certa.api.http.thinking import Part, ThinkSplitter
from certa.api.validation import validate
from certa.config import Settings
from certa.core.errors import CertaError
from certa.core.report import SolveReport
from certa.core.strategies import strategy_name
from certa.core.strategies.dynasor import has_open_think
from certa.observability.logs import bind_request
from certa.observability.telemetry import Telemetry
from certa.prompts import question_prompt, render_messages
from certa.service import RequestView, SolveService
from certa.service.views import Finished
from certa.store.requests.port import Status

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
REQUEST_ID_HEADER = "x-request-id"


class OpenAiApi:
    def __init__(
        self,
        service: SolveService,
        authenticator: Authenticator,
        settings: Settings,
        telemetry: Telemetry,
        ready: Callable[[], bool],
    ) -> None:
        self._service = service
        self._auth = authenticator
        self._settings = settings
        self._telemetry = telemetry
        self._ready = ready
        self.catalogue = ModelCatalogue(settings)

    def application(self) -> web.Application:
        app = web.Application(
            client_max_size=self._settings.http_max_body_bytes,
            middlewares=[access_middleware(self._telemetry), _errors],
        )
        app.on_response_prepare.append(note_response)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        return app

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        ready = self._ready()
        return web.json_response({"status": "ready" if ready else "not ready"}, status=200 if ready else 503)

    async def _models(self, request: web.Request) -> web.Response:
        self._tenant(request)
        return web.json_response(wire.model_list(list(self.catalogue)))

    def _tenant(self, request: web.Request) -> str:
        """The caller's tenant (a refusal is an audit line naming the route), named for the request's lines."""
        call = current_call()
        tenant = self._auth.identify_headers(request.headers, _peer(request), rpc=call.name if call else "").tenant
        bind_request(tenant=tenant)
        if call is not None:
            call.tenant = tenant
        return tenant

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._solve(request, "messages")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._solve(request, "prompt")

    async def _solve(self, request: web.Request, prompt_param: str) -> web.StreamResponse:
        try:
            return await self._run(request, prompt_param)
        except CertaError as error:
            return error_response(error, prompt_param)

    async def _run(self, request: web.Request, prompt_param: str) -> web.StreamResponse:
        tenant = self._tenant(request)
        body = load_body(await _read(request, self._settings.http_max_body_bytes))
        chat = prompt_param == "messages"
        parsed = parse_chat(body, self.catalogue) if chat else parse_completion(body, self.catalogue)
        prompt = await self._prompt(parsed)
        chosen_id = request.headers.get(IDEMPOTENCY_HEADER, "")
        request_id = chosen_id or uuid.uuid4().hex
        parsed.request.request_id = chosen_id
        bind_request(request_id=request_id)
        call = current_call()
        if call is not None:
            call.request_id = request_id
        spec = validate(parsed.request, self._settings, request_id)
        if call is not None:
            call.strategy = str(strategy_name(spec.strategy))
        view = await self._service.submit(
            spec, tenant, idempotent=bool(chosen_id), trace_context=self._telemetry.current_context()
        )
        try:
            session = _Session(self._service, view, parsed, has_open_think(prompt) if chat else False, call)
            if parsed.stream:
                return await session.stream(request, chat)
            return session.respond(await self._service.wait(view.key), chat)
        finally:
            if not chosen_id:  # nobody could collect it any more: stop it (a no-op once it is done)
                self._service.abandon(view.key)

    async def _prompt(self, parsed: ParsedRequest) -> str:
        """Set the request's input: one user message is a question (rendered by the service, as over gRPC), a
        conversation is rendered here with the model's chat template; returns the prompt the model sees."""
        request = parsed.request
        if not parsed.messages:
            return request.raw_prompt
        template = await self._service.chat_template(request.backend, request.model)
        if parsed.single_question:
            request.question = parsed.messages[0].content
            return question_prompt(request.question, self._service.instruction, template)
        messages = [{"role": message.role, "content": message.content} for message in parsed.messages]
        if template is None:
            request.raw_prompt = "\n\n".join(message.content for message in parsed.messages)
        else:
            request.raw_prompt = render_messages(template, messages)
        return request.raw_prompt


class _Session:
    """One request's answer: a whole response, or a stream of chunks."""

    def __init__(
        self, service: SolveService, view: RequestView, parsed: ParsedRequest, thinking: bool, call: HttpCall | None
    ) -> None:
        self._service = service
        self._call = call
        self._view = view
        self._parsed = parsed
        self._thinking = thinking
        self._request_id = view.key.request_id
        self._created = int(view.created_at)
        self._model = parsed.model.name

    def _report(self, view: RequestView) -> SolveReport:
        if view.status is Status.CANCELLED or view.result is None or not view.result.complete:
            raise RequestCancelled()
        self._count(view.result)
        return view.result

    def _count(self, report: SolveReport) -> None:
        """The generated tokens, for the access line."""
        if self._call is not None:
            self._call.tokens = report.usage.path_tokens + report.usage.probe_tokens

    def respond(self, view: RequestView, chat: bool) -> web.Response:
        report = self._report(view)
        body = (
            wire.chat_completion(report, self._request_id, view.strategy, self._model, self._created, self._thinking)
            if chat
            else wire.completion(report, self._request_id, view.strategy, self._model, self._created)
        )
        return web.json_response(wire.dump(body), headers={REQUEST_ID_HEADER: self._request_id})

    async def stream(self, request: web.Request, chat: bool) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                REQUEST_ID_HEADER: self._request_id,
            }
        )
        await response.prepare(request)
        splitter = ThinkSplitter(self._thinking)
        text = EventText(self._parsed.request.strategy)
        if chat:
            await _send(response, self._chat_chunk(ChoiceDelta(role="assistant", content="")))
        try:
            async for event in self._service.follow(self._view.key):
                if isinstance(event, Finished):
                    if event.result is None or not event.result.complete:
                        raise RequestCancelled()
                    self._count(event.result)
                    await self._finish(response, event.result, text.rest(event.result.outcome.text), splitter, chat)
                    break
                released = text.feed(event)
                if released:
                    await self._send_text(response, released, splitter, chat)
        except CertaError as error:
            await _send(response, error_json(error))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _finish(
        self, response: web.StreamResponse, report: SolveReport, rest: str, splitter: ThinkSplitter, chat: bool
    ) -> None:
        await self._send_text(response, rest, splitter, chat, final=True)
        extension = wire.extension(report, self._request_id, self._view.strategy)
        if chat:
            last = wire.chat_chunk(
                self._request_id,
                self._model,
                self._created,
                ChoiceDelta(),
                finish_reason=wire.finish_reason(report),
                certa=extension,
            )
            await _send(response, wire.dump(last))
        else:
            whole = wire.completion(
                report, self._request_id, self._view.strategy, self._model, self._created, text="", usage=None
            )
            await _send(response, wire.dump(whole))
        if self._parsed.include_usage:
            tail = (
                wire.chat_chunk(self._request_id, self._model, self._created, None, usage=wire.usage(report))
                if chat
                else wire.completion_chunk(self._request_id, self._model, self._created, None, usage=wire.usage(report))
            )
            await _send(response, wire.dump(tail))

    async def _send_text(
        self, response: web.StreamResponse, text: str, splitter: ThinkSplitter, chat: bool, final: bool = False
    ) -> None:
        if not chat:
            if text:
                chunk = wire.completion_chunk(self._request_id, self._model, self._created, text)
                await _send(response, wire.dump(chunk))
            return
        pieces = splitter.feed(text) + (splitter.flush() if final else [])
        for piece in pieces:
            key = "reasoning_content" if piece.part is Part.REASONING else "content"  # the first is an extension
            delta = ChoiceDelta.model_validate({key: piece.text})
            await _send(response, self._chat_chunk(delta))

    def _chat_chunk(self, delta: ChoiceDelta) -> dict[str, Any]:
        return wire.dump(wire.chat_chunk(self._request_id, self._model, self._created, delta))


def _peer(request: web.Request) -> dict[str, list[bytes]] | None:
    """A verified client certificate's common name, in the shape gRPC's auth context has it."""
    certificate = request.transport.get_extra_info("peercert") if request.transport is not None else None
    names = [value for rdn in (certificate or {}).get("subject", ()) for key, value in rdn if key == "commonName"]
    return {"x509_common_name": [names[0].encode()]} if names else None


async def _send(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    await response.write(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")


async def _read(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLarge(limit)
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge(limit) from None


@web.middleware
async def _errors(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """Everything outside the solve handlers' own mapping: unknown routes, wrong methods, bugs."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except web.HTTPException as error:
        code = "not_found" if error.status == 404 else "invalid_request"
        return http_error(
            error.status, f"{request.method} {request.path}: {error.reason}", "invalid_request_error", None, code
        )
    except CertaError as error:
        return error_response(error)
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return http_error(500, "internal error; the server log has the details", "server_error", None, "internal")
