"""A real OpenAI-compatible HTTP server on 127.0.0.1, for tests and benchmarks.

It runs aiohttp in a background thread with its own event loop, so synchronous tests and
code under test that makes its own event loops can both talk to it over real HTTP.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Union

from aiohttp import web

Handler = Callable[["ChatRequest"], Union["ServerReply", str, Awaitable[Union["ServerReply", str]]]]


@dataclass
class ChatRequest:
    """One request the server received, with the time it arrived (`time.monotonic()`)."""

    index: int
    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float
    path: str = "/v1/chat/completions"
    client: str = ""  # the client's address and port: one per connection it opened

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.body.get("messages") or []
        return messages

    @property
    def response_format(self) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self.body.get("response_format")
        return value

    @property
    def tools(self) -> list[dict[str, Any]] | None:
        value: list[dict[str, Any]] | None = self.body.get("tools")
        return value

    @property
    def last_user_content(self) -> str:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return _content_text(message.get("content"))
        return ""

    @property
    def prompt(self) -> str:
        """Every message's content joined, for asserting on what the model was shown."""
        return "\n\n".join(_content_text(m.get("content")) for m in self.messages)


@dataclass
class ServerReply:
    """How to answer one request.

    `tool_calls` items are `{"name": ..., "arguments": dict | str}` (an `id` is optional);
    `usage` overrides the token counts (`prompt_tokens`, `completion_tokens`); `body` replaces
    the whole JSON (or text) body. A status other than 200 sends an OpenAI-style error body
    with `content` as the message unless `body` is given. `fault` answers 200 with a body
    that holds no reply, as some servers do under load: "no_choices" (`"choices": []`) or
    "no_message" (a choice without a `message`).
    """

    content: str | None = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float | None = None
    tool_calls: list[dict[str, Any]] | None = None
    usage: dict[str, int] | None = None
    body: dict[str, Any] | str | None = None
    finish_reason: str | None = None
    fault: Literal["no_choices", "no_message"] | None = None


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _count_tokens(text: str) -> int:
    return (len(text) + 3) // 4


# Phrases that open redraft's default system prompts, by the role that sends them.
_ROLE_PHRASES = (
    ("strict, fair reviewer", "critic"),
    ("expert editor", "editor"),
    ("You review a failed attempt", "reflector"),
    ("into a checklist of atomic constraints", "checklist"),
    ("You compare two answers", "pairwise"),
    ("You write the reference answer", "reference"),
)


def role_of(request: ChatRequest) -> str:
    """Which of redraft's roles sent `request` ("critic", "editor", "reflector", "actor", or
    for the checklist and pairwise critics "checklist", "pairwise" and "reference"), told by
    its system prompt, as a scripted server answers each role differently."""
    system = request.messages[0]["content"]
    return next((role for phrase, role in _ROLE_PHRASES if phrase in system), "actor")


def echo_handler(request: ChatRequest) -> str:
    """The default handler: answers with the last user message."""
    return request.last_user_content


class OpenAIServer:
    """`POST /v1/chat/completions` answered by `handler(request)`; use as a context manager.

    `handler` may be sync or async and returns a `ServerReply` or plain text. Sync handlers run
    on the server's loop, so they must not block; use `ServerReply.delay_s` (or `latency_s`, the
    default delay of every call) to simulate slow answers.
    """

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        latency_s: float = 0.0,
        backlog: int = 2048,
    ) -> None:
        self.handler: Handler = handler or echo_handler
        self.latency_s = latency_s
        self.backlog = backlog
        self.requests: list[ChatRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._port: int | None = None

    @classmethod
    def scripted(
        cls, replies: Iterable[ServerReply | str], *, latency_s: float = 0.0
    ) -> OpenAIServer:
        """A server that replays `replies` in order, then answers 500 saying it ran out."""
        queue = list(replies)
        position = itertools.count()

        def replay(request: ChatRequest) -> ServerReply | str:
            index = next(position)
            if index >= len(queue):
                return ServerReply(
                    f"OpenAIServer script ran out of replies after {len(queue)}", status=500
                )
            return queue[index]

        return cls(replay, latency_s=latency_s)

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the server is not running: use it as a context manager")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        """Forget recorded requests and the in-flight high-water mark."""
        with self._lock:
            self.requests.clear()
            self.max_in_flight = self.in_flight

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> OpenAIServer:
        if self._thread is not None:
            return self
        # Bind here, in the caller's thread, so the port is known (and errors raised) at once.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(self.backlog)
        self._port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_site(sock))
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown())
                loop.close()

        self._thread = threading.Thread(target=serve, name="OpenAIServer", daemon=True)
        self._thread.start()
        ready.wait()
        if errors:
            self._thread = None
            sock.close()
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None
        self._loop = None
        self._port = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def _start_site(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._handle_chat)
        app.router.add_post("/chat/completions", self._handle_chat)
        app.router.add_get("/v1/models", self._handle_models)
        # No access log: a benchmark sends thousands of requests.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.SockSite(self._runner, sock, backlog=self.backlog)
        await site.start()

    async def _shutdown(self) -> None:
        # Requests still sleeping (timeout tests) would otherwise hold shutdown up.
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- handlers ----------------------------------------------------------------------------

    async def _handle_models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            with self._lock:
                self.in_flight -= 1
            if task is not None:
                self._tasks.discard(task)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        received_at = time.monotonic()
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the request body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the request body is not a JSON object")
        chat = ChatRequest(
            index=next(self._counter),
            body=body,
            headers=dict(request.headers),
            received_at=received_at,
            path=request.path,
            client=_peer(request),
        )
        with self._lock:
            self.requests.append(chat)
        if body.get("stream"):
            return _error(400, "OpenAIServer does not stream: send stream=false")
        try:
            outcome = self.handler(chat)
            if inspect.isawaitable(outcome):
                outcome = await outcome
        except Exception as exc:  # a broken test handler should read as a 500, not a hang
            return _error(500, f"handler failed: {type(exc).__name__}: {exc}")
        reply = outcome if isinstance(outcome, ServerReply) else ServerReply(content=outcome)
        delay = self.latency_s if reply.delay_s is None else reply.delay_s
        if delay > 0:
            await asyncio.sleep(delay)
        return _response(chat, reply)


def _peer(request: web.Request) -> str:
    peer = None if request.transport is None else request.transport.get_extra_info("peername")
    return "" if not peer else f"{peer[0]}:{peer[1]}"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    kind = "rate_limit_error" if status == 429 else "server_error" if status >= 500 else "error"
    body = {"error": {"message": message, "type": kind, "code": str(status)}}
    return web.json_response(body, status=status, headers=headers)


def _response(chat: ChatRequest, reply: ServerReply) -> web.Response:
    if reply.body is not None:
        if isinstance(reply.body, str):
            return web.Response(text=reply.body, status=reply.status, headers=reply.headers)
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)
    if reply.status != 200:
        return _error(reply.status, reply.content or f"error {reply.status}", reply.headers)
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.get("id") or f"call_{chat.index}_{n}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": call.get("arguments")
                    if isinstance(call.get("arguments"), str)
                    else json.dumps(call.get("arguments") or {}),
                },
            }
            for n, call in enumerate(reply.tool_calls)
        ]
    finish_reason = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish_reason}
    if reply.fault == "no_message":
        del choice["message"]
    usage: dict[str, int] = {
        "prompt_tokens": _count_tokens(chat.prompt),
        "completion_tokens": _count_tokens(reply.content or ""),
    }
    usage.update(reply.usage or {})
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    body = {
        "id": f"chatcmpl-{chat.index}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": chat.model,
        "choices": [] if reply.fault == "no_choices" else [choice],
        "usage": usage,
    }
    return web.json_response(body, headers=reply.headers)
