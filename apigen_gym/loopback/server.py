"""A loopback OpenAI-compatible server for tests and benchmarks: scripted models, latency, injected faults.

Endpoints: ``POST /v1/chat/completions`` (also ``/chat/completions``), ``GET /v1/models``, ``GET /health``
and ``GET /stats``. The answering model is chosen by the request's ``model`` field (see
:mod:`apigen_gym.loopback.models`). Latency is an ``asyncio.sleep``; faults (429, 500, a sleep past the
client's timeout, malformed tool-call JSON, empty choices) are drawn from a seeded RNG at configured
rates, or forced per request with the ``X-Apigen-Fault`` header. A 429 is answered at once; every other
answer comes after the latency. The same mechanism gives answers the shapes real servers send
(:data:`~apigen_gym.loopback.config.SHAPES`: ``content: ""`` beside tool calls, ids without ``call_``,
tool calls written as text, answers cut at ``finish_reason: "length"``). ``refuse_response_format``
answers 400 to structured-output requests, as servers without them do; ``slots`` answers that many
requests at once and queues the rest, like a llama.cpp server with one slot.

In-process (tests)::

    with LoopbackServer(ServerConfig(latency=0.1)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x")

As a process (benchmarks): ``python -m apigen_gym.loopback.server --port 0 --latency 1.0``, which prints
``serving on http://127.0.0.1:PORT/v1`` once ready (see :func:`start_server_process`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from apigen_gym.loopback.config import (
    DEFAULT_PORT,
    DESCRIPTION,
    FAULT_HEADER,
    FAULTS,
    LATENCY_HEADER,
    SHAPES,
    UNREADABLE_MESSAGE,
    ServerConfig,
    add_arguments,
    base_url_of,
    check_host,
    config_from_args,
)
from apigen_gym.loopback.models import (
    ChatRequest,
    ModelError,
    ModelRegistry,
    Reply,
    ToolCallOut,
    new_call_id,
)
from apigen_gym.util.processes import READY_PREFIX, wait_ready

"""The injectable faults, in the order their rate bands are laid out."""


class FaultPicker:
    """Chooses each request's fault: the header if given, else a seeded draw over the rate bands."""

    def __init__(self, config: ServerConfig):
        self._rng = random.Random(config.seed)
        self._bands: list[tuple[float, str]] = []
        upper = 0.0
        for fault, rate in config.rates().items():
            if rate > 0:
                upper += rate
                self._bands.append((upper, fault))

    def pick(self, forced: str | None = None) -> str | None:
        """The fault for the next request, or None; raises ValueError on an unknown forced fault."""
        if forced:
            forced = forced.strip().lower()
            if forced == "none":
                return None
            if forced not in FAULTS:
                raise ValueError(f"{FAULT_HEADER} must be one of {', '.join(FAULTS)} or none, not {forced!r}")
            return forced
        if not self._bands:
            return None
        draw = self._rng.random()
        return next((fault for upper, fault in self._bands if draw < upper), None)


@dataclass
class ServerStats:
    """Counts of what the server has answered."""

    requests: int = 0
    completed: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    cancelled: int = 0
    structured: int = 0
    """Requests that carried a ``response_format`` (and were accepted)."""
    faults: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAULTS, 0))
    models: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {
            "requests": self.requests,
            "completed": self.completed,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "cancelled": self.cancelled,
            "structured": self.structured,
            "faults": dict(self.faults),
            "models": dict(self.models),
            "errors": dict(self.errors),
            "uptime": round(time.time() - self.started, 3),
        }


def error_body(message: str, kind: str, code: str | None) -> dict[str, Any]:
    """An OpenAI-style error object."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON response made with the standard library encoder."""
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers=headers, content_type="application/json"
    )


def malformed(reply: Reply, tools: list[dict[str, Any]]) -> Reply:
    """The reply turned into a tool call whose ``arguments`` is truncated, unparsable JSON."""
    if reply.tool_calls:
        call = reply.tool_calls[0]
        name, arguments = call.name, call.arguments
    else:
        first = tools[0].get("function", {}) if tools and isinstance(tools[0], dict) else {}
        name, arguments = str(first.get("name") or "unknown_tool"), '{"query": "x"}'
    return Reply(None, (ToolCallOut(name, arguments[:-1] or "{", new_call_id()),))


def _as_text(calls: list[dict[str, Any]], blocks: bool) -> str:
    """Tool calls as a model writes them without a tool-call parser: ``<tool_call>`` blocks or bare JSON."""
    written = [
        {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])} for c in calls
    ]
    if blocks:
        return "".join(f"<tool_call>\n{json.dumps(w)}\n</tool_call>" for w in written)
    return json.dumps(written[0] if len(written) == 1 else written)


def reshape(choice: dict[str, Any], shape: str) -> None:
    """Give one answer a real server's shape (see :data:`SHAPES`), in place."""
    message = choice["message"]
    calls: list[dict[str, Any]] = message.get("tool_calls") or []
    if shape == "blank-content" and calls:
        message["content"] = ""
    elif shape == "bare-ids":
        for call in calls:
            call["id"] = secrets.token_hex(16)
    elif shape == "args-object":
        for call in calls:
            call["function"]["arguments"] = json.loads(call["function"]["arguments"])
    elif shape in ("text-calls", "json-calls") and calls:
        message["content"] = (message.get("content") or "") + _as_text(calls, shape == "text-calls")
        del message["tool_calls"]
        choice["finish_reason"] = "stop"
    elif shape == "cut":
        text = (message.get("content") or "") + (_as_text(calls, True) if calls else "")
        message["content"] = text[: max(1, len(text) // 2)]
        message.pop("tool_calls", None)
        choice["finish_reason"] = "length"


def completion(model: str, reply: Reply | None, prompt_tokens: int) -> dict[str, Any]:
    """A ChatCompletion object; ``reply=None`` gives ``choices: []``."""
    choices: list[dict[str, Any]] = []
    completion_tokens = 0
    if reply is not None:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        text = reply.content or ""
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in reply.tool_calls
            ]
            text += "".join(c.name + c.arguments for c in reply.tool_calls)
        finish = "tool_calls" if reply.tool_calls else "stop"
        choices.append({"index": 0, "message": message, "finish_reason": finish, "logprobs": None})
        completion_tokens = len(text) // 4 + 1
    return {
        "id": f"chatcmpl-{new_call_id()[5:]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class LoopbackApp:
    """The aiohttp application: routes, the scripted models, the fault picker and the counters."""

    def __init__(self, config: ServerConfig):
        self.config = config
        self.registry = ModelRegistry(
            config.models, config.oracle_domain, config.oracle_data_dir, config.oracle_splits
        )
        self.faults = FaultPicker(config)
        self.stats = ServerStats()
        self._slots = asyncio.Semaphore(config.slots) if config.slots else None
        self._jitter = random.Random(None if config.seed is None else config.seed + 1)

    def build(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/chat/completions", self.chat_completions)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/models", self.list_models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/stats", self.get_stats)
        app.router.add_get("/v1/stats", self.get_stats)
        return app

    async def health(self, request: web.Request) -> web.Response:
        """``{"status": "ok"}``."""
        return json_response({"status": "ok"})

    async def get_stats(self, request: web.Request) -> web.Response:
        """The counters as JSON."""
        return json_response(self.stats.snapshot())

    async def list_models(self, request: web.Request) -> web.Response:
        """The served models, OpenAI style."""
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "apigen-gym"} for m in self.config.models
        ]
        return json_response({"object": "list", "data": data})

    async def chat_completions(self, request: web.Request) -> web.Response:
        """Answer one chat completion, counting it."""
        stats = self.stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            response = await self._complete(request)
        except asyncio.CancelledError:
            stats.cancelled += 1
            raise
        finally:
            stats.in_flight -= 1
        if response.status == 200:
            stats.completed += 1
        else:
            key = str(response.status)
            stats.errors[key] = stats.errors.get(key, 0) + 1
        return response

    def _error(self, status: int, message: str, code: str | None = None) -> web.Response:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return json_response(error_body(message, kind, code), status)

    async def _complete(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = json.loads(body)
        except ValueError:
            return self._error(400, "the request body is not valid JSON", "invalid_json")
        problem = _request_problem(payload)
        if problem:
            return self._error(400, problem, "invalid_request")
        if payload.get("response_format") is not None:
            if self.config.refuse_response_format:
                message = "response_format is not supported by this server"
                return self._error(400, message, "unsupported_parameter")
            self.stats.structured += 1
        model_name: str = payload["model"]
        try:
            model = self.registry.resolve(model_name)
            fault = self.faults.pick(request.headers.get(FAULT_HEADER))
        except ModelError as exc:
            return self._error(exc.status, exc.message, exc.code)
        except ValueError as exc:
            return self._error(400, str(exc), "invalid_fault")
        self.stats.models[model_name] = self.stats.models.get(model_name, 0) + 1
        if fault is not None:
            self.stats.faults[fault] += 1
        if fault == "429":
            return self._rate_limited()
        chat = ChatRequest(
            model_name,
            payload["messages"],
            payload.get("tools") or [],
            request.headers,
            payload.get("response_format"),
        )
        try:
            reply = model.reply(chat)
        except ModelError as exc:
            return self._error(exc.status, exc.message, exc.code)
        if self._slots is None:
            await self._wait(request, fault)
        else:
            async with self._slots:  # one slot: the others queue, as on a llama.cpp server
                await self._wait(request, fault)
        if fault == "500":
            return self._error(500, "The server had an error while processing your request (injected).")
        if fault == "unreadable":
            return self._error(500, UNREADABLE_MESSAGE)
        if fault == "malformed":
            reply = malformed(reply, chat.tools)
        data = completion(model_name, None if fault == "empty" else reply, len(body) // 4)
        if fault in SHAPES and data["choices"]:
            reshape(data["choices"][0], fault)
        return json_response(data)

    def _rate_limited(self) -> web.Response:
        wait = self.config.retry_after_ms
        headers = {"retry-after-ms": str(wait), "retry-after": f"{wait / 1000:g}"}
        message = "Rate limit reached for requests (injected). Please retry shortly."
        return json_response(error_body(message, "requests", "rate_limit_exceeded"), 429, headers)

    async def _wait(self, request: web.Request, fault: str | None) -> None:
        delay = self.config.latency
        override = request.headers.get(LATENCY_HEADER)
        if override:
            with contextlib.suppress(ValueError):
                delay = max(0.0, float(override))
        if self.config.latency_jitter:
            delay = max(0.0, delay + self._jitter.uniform(-1, 1) * self.config.latency_jitter)
        if fault == "timeout":
            delay = max(delay, self.config.timeout_sleep)
        if delay > 0:
            await asyncio.sleep(delay)


def _request_problem(payload: Any) -> str | None:
    """What is wrong with a chat-completion request body, or None."""
    if not isinstance(payload, dict):
        return "the request body must be a JSON object"
    if not isinstance(payload.get("model"), str) or not payload["model"]:
        return "you must provide a model parameter"
    messages = payload.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        return "messages must be a list of message objects"
    if payload.get("tools") is not None and not isinstance(payload["tools"], list):
        return "tools must be a list"
    if payload.get("stream"):
        return "streaming is not supported by the loopback server"
    return None


# --- running it -------------------------------------------------------------------------------------


async def start_app(
    config: ServerConfig, host: str, port: int, shutdown_timeout: float = 1.0
) -> tuple[web.AppRunner, LoopbackApp, int]:
    """Start the server on the running loop; returns the runner, the app and the bound port."""
    app = LoopbackApp(config)
    runner = web.AppRunner(
        app.build(), access_log=None, handler_cancellation=True, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    return runner, app, int(bound)


class LoopbackServer:
    """The server in a background thread with its own event loop; a context manager (for tests)."""

    def __init__(
        self,
        config: ServerConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        allow_remote: bool = False,
    ):
        check_host(host, allow_remote)
        self.config = config or ServerConfig()
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._app: LoopbackApp | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return base_url_of(self.host, self.port)

    @property
    def url(self) -> str:
        """The server root, without ``/v1``."""
        return self.base_url[: -len("/v1")]

    def start(self) -> LoopbackServer:
        """Start serving; returns once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        self._thread = threading.Thread(target=self._serve, name="apigen-llm-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            self._thread.join()
            self._thread = None
            raise self._failure
        return self

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._runner, self._app, self.port = loop.run_until_complete(
                start_app(self.config, self.host, self.port)
            )
        except BaseException as exc:  # handed to the starting thread
            self._failure = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None

    def stats(self) -> dict[str, Any]:
        """The server's counters (as ``GET /stats`` returns them)."""
        if self._app is None:
            raise RuntimeError("the server has not been started")
        if self._thread is None or self._loop is None:
            return self._app.stats.snapshot()

        async def snapshot() -> dict[str, Any]:
            assert self._app is not None
            return self._app.stats.snapshot()

        return asyncio.run_coroutine_threadsafe(snapshot(), self._loop).result(timeout=10)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


async def _serve_forever(config: ServerConfig, host: str, port: int) -> None:
    runner, _, bound = await start_app(config, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    print(f"{READY_PREFIX}{base_url_of(host, bound)}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run_server(
    config: ServerConfig, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, allow_remote: bool = False
) -> None:
    """Serve in the foreground until SIGINT or SIGTERM; prints ``serving on URL`` once ready."""
    check_host(host, allow_remote)
    asyncio.run(_serve_forever(config, host, port))


def start_server_process(
    args: Sequence[str] = (), timeout: float = 30.0
) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m apigen_gym.loopback.server ARGS`` (port 0 unless given); wait for it to be ready."""
    argv = [sys.executable, "-m", "apigen_gym.loopback.server", *args]
    if not any(a == "--port" or a.startswith("--port=") for a in args):
        argv += ["--port", "0"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, bufsize=1)
    return process, wait_ready(process, timeout, "the LLM server")


# --- command line -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m apigen_gym.loopback.server``: serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m apigen_gym.loopback.server",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        check_host(args.host, args.allow_remote)
    except (ValidationError, ValueError) as exc:
        parser.error(str(exc).replace("\n", "; "))
    try:
        run_server(config, args.host, args.port, allow_remote=args.allow_remote)
    except OSError as exc:
        print(f"error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
