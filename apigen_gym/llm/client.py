"""One small layer over the ``openai`` package for every LLM call the project makes.

- Works with any ``/v1/chat/completions`` server (OpenAI, vLLM, SGLang, Ollama, the project's own
  loopback server); model, base URL and key come from arguments or the usual ``OPENAI_*`` variables.
- Retries 429, 5xx, timeouts, dropped connections and empty answers with exponential backoff and
  full jitter; after the last retry raises :class:`LLMError` labelled ``infrastructure``. Requests
  the server rejects as such (400: bad request or context too long, 401, 403, 404, 422) are labelled
  ``request`` and not retried.
- A request that timed out is tried again with twice the time (up to :data:`TIMEOUT_GROWTH` times
  the setting), and noted; the final label says how long the last try waited.
- An answer the server could not read: a 500 whose message says the model's output does not parse
  (llama.cpp: "The model produced output that does not match the expected ... format", "Failed to
  parse input"; Ollama: "error parsing tool call") is the model's failure, not the server's. The same
  request would fail the same way (a fixed seed), so it is asked again with another seed, at once,
  as often as the role allows (:data:`~apigen_gym.llm.settings.RESAMPLES`; never at temperature 0),
  each try noted ``unreadable``; then :class:`LLMError` labelled ``model``, which callers count
  apart from infrastructure errors.
- Backpressure: ``max_in_flight`` bounds the requests sent at once to one server by every client of
  the process, so that a server with one slot is not handed a queue that outlasts the timeout; a run
  spread over worker processes gives each a share of it (:mod:`apigen_gym.llm.budget`).
- Structured outputs: ``complete(..., schema=Model)`` asks for a ``json_schema`` response format
  generated from the pydantic model; a server that refuses it (a 4xx naming ``response_format``) is
  asked again without it, and remembered for the rest of the run (see :mod:`apigen_gym.llm.structured`).
- Every answer is brought to OpenAI's shape (:mod:`apigen_gym.llm.shapes`): tool calls written as
  text are recovered, cut answers (``finish_reason: "length"``) are marked.
- Token usage and cost per call (price table configurable), and an optional on-disk cache keyed by
  the full request, for record/replay in tests and for resuming interrupted runs.
- Fast: the layer builds and reads the JSON itself. The typed ``create`` path spends several
  milliseconds of CPU per call walking the request for type transforms and validating the response
  into pydantic models, which caps a 2-core machine at a few hundred calls per second. The request
  is the one the ``openai`` client defines (URL, headers, auth, its exceptions for failures); by
  default it is sent on a pooled aiohttp session, or through the client itself
  (``transport="openai"``): see :mod:`apigen_gym.llm.transport`.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import openai

from apigen_gym.llm import budget
from apigen_gym.llm.settings import DEFAULT_MAX_TOKENS, DEFAULT_RESAMPLES, RESAMPLES, LLMSettings, Role
from apigen_gym.llm.shapes import UNREADABLE, normalize_message
from apigen_gym.llm.structured import Schema, response_format
from apigen_gym.llm.transport import Channel, open_channel
from apigen_gym.llm.types import Completion, LLMError, Usage
from apigen_gym.util import jsonio
from apigen_gym.util.aio import run_sync

TIMEOUT_GROWTH = 4
"""A retried request may wait up to this many times the configured timeout."""
TIMEOUT = "timeout"
PROMPT_ONLY = "prompt-only"
_UNREADABLE_ANSWER = re.compile(
    r"model produced output that does not match|failed to parse (?:input|tool call)|error parsing tool call",
    re.IGNORECASE,
)
"""What servers say when they cannot read the model's output (llama.cpp, Ollama)."""
_SEED_STEP = 1_000_003
_RESPONSE_FORMAT = "response_format"
_prompt_only_servers: set[str] = set()
"""Servers (base URLs) that refused ``response_format`` in this process."""
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)
"""Per event loop and server: the requests in flight, when ``max_in_flight`` bounds them."""
_inherited: list[Channel] = []
"""Pools a forked child inherited from its parent: never used, never closed, never collected here."""
_closing: set[asyncio.Task[None]] = set()
"""Pools being closed by :meth:`LLMClient.close` called inside a coroutine of their loop."""


def refuses_response_format(base_url: str | None) -> bool:
    """Whether the server at ``base_url`` refused ``response_format`` earlier in this process."""
    return (base_url or "") in _prompt_only_servers


def _tool_names(body: Mapping[str, Any]) -> list[str]:
    """The names of the tools a request offers."""
    names = []
    for tool in body.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.append(function["name"])
    return names


def _unreadable_answer(exc: Exception) -> bool:
    """A 5xx saying that the model's output could not be parsed (the model's failure, not the server's)."""
    if not isinstance(exc, openai.InternalServerError):
        return False
    return bool(_UNREADABLE_ANSWER.search(f"{exc.message} {exc.body if exc.body is not None else ''}"))


def _names_response_format(exc: openai.APIStatusError) -> bool:
    """A refusal that is about the response format (OpenAI, vLLM and llama.cpp all name the field)."""
    text = f"{exc.message} {exc.body if exc.body is not None else ''}".lower()
    return _RESPONSE_FORMAT in text or "json_schema" in text


_RETRYABLE = (
    openai.RateLimitError,
    openai.InternalServerError,
    openai.APITimeoutError,
    openai.APIConnectionError,
)


class _EmptyAnswer(Exception):
    """The server answered 200 with no choice or no message."""


def _retry_after(exc: Exception) -> float:
    """The server's requested wait, in seconds, when it sent one."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        pass
    return 0.0


def _cause(exc: Exception, *, refused: bool = False) -> str:
    """What failed, for the label: the error class and status, or a refused connection; for a request
    the server ``refused`` (a 4xx not retried), the reason its answer gave."""
    link: BaseException | None = exc
    while link is not None:  # the aiohttp transport reports a refused connection as a connect timeout
        if type(link).__name__ == "ClientConnectorError" or isinstance(link, ConnectionRefusedError):
            return "APIConnectionError (connection refused)"
        link = link.__cause__ or link.__context__
    if isinstance(exc, _EmptyAnswer):
        return f"EmptyAnswer ({exc})"
    status = getattr(exc, "status_code", None)
    if not status:
        return type(exc).__name__
    reason = _server_reason(exc) if refused else None
    return f"{type(exc).__name__} ({status}{f': {reason}' if reason else ''})"


def _server_reason(exc: Exception, limit: int = 200) -> str | None:
    """Why the server refused a request, as its answer said (``error.message``, or the text), on one line."""
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        body = body.get("message") or body.get("detail") or body.get("error")
    if not isinstance(body, str) or not body.strip():
        return None
    reason = " ".join(body.split())
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


class LLMClient:
    """Chat completions with retries, labelling, usage, cost and an optional cache.

    Safe to share between coroutines of one event loop; a channel (HTTP pool) is opened per event loop.
    """

    def __init__(self, settings: LLMSettings, rng: random.Random | None = None):
        self.settings = settings
        self.rng = rng or random.Random()
        self.usage = Usage()
        self.cost = 0.0
        self.calls = 0
        self._channels: dict[asyncio.AbstractEventLoop, Channel] = {}
        """One HTTP pool per event loop that used the client."""
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        """Pickles without its channels: open connections stay with their process and loop."""
        return {**self.__dict__, "_channels": {}}

    def _forget_parents_channels(self) -> None:
        """In a forked child: the parent's pools are not ours to use, nor to close (their sockets and
        event loop are the parent's); kept referenced, so that collecting them touches nothing."""
        if self._pid != os.getpid():
            _inherited.extend(self._channels.values())
            self._channels, self._pid = {}, os.getpid()

    def _channel(self) -> Channel:
        self._forget_parents_channels()
        loop = asyncio.get_running_loop()
        channel = self._channels.get(loop)
        if channel is None:
            channel = self._channels[loop] = open_channel(self.settings)
        return channel

    def request_body(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None,
        role: Role | None = None,
        schema: Schema | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """The JSON body of a chat-completions request.

        ``max_tokens``: the call's, else the settings', else the ``role``'s default cap.
        """
        body: dict[str, Any] = {"model": self.settings.model, "messages": list(messages)}
        if tools:
            body["tools"] = list(tools)
        defaults = {
            "temperature": self.settings.temperature,
            "seed": self.settings.seed,
            "max_tokens": self.settings.max_tokens or (DEFAULT_MAX_TOKENS[role] if role else None),
        }
        given = {key: value for key, value in params.items() if value is not None}  # None: keep the setting
        for key, value in {**defaults, **given}.items():
            if value is not None:
                body[key] = value
        if schema is not None:
            body[_RESPONSE_FORMAT] = response_format(schema)
        return body

    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        role: Role | None = None,
        schema: Schema | None = None,
        text_required: bool = False,
        **params: Any,
    ) -> Completion:
        """One chat completion; raises :class:`LLMError` when no answer could be had.

        ``role`` picks the default ``max_tokens`` and how often an unreadable answer is asked for again
        (:data:`~apigen_gym.llm.settings.RESAMPLES`; two without a role); ``schema`` asks for JSON of
        that pydantic model (or :class:`~apigen_gym.llm.structured.JsonSchema`). The cache key is the
        request as asked for, so a run replays the same whether or not the server accepted
        ``response_format`` or another seed was needed. ``text_required``: an answer without text (no
        content, or only tool calls) is a bad answer, retried like an empty one (a simulated user must
        say something).
        """
        body = self.request_body(messages, tools, role, schema, **params)
        key = jsonio.digest(body) if self.settings.cache_dir is not None else None
        if key is not None and self.settings.cache_mode != "off":
            hit = self._cache_read(key)
            if hit is not None:
                return hit
            if self.settings.cache_mode == "replay":
                raise LLMError("infrastructure", "cache miss in replay mode", 0)
        resamples = RESAMPLES[role] if role is not None else DEFAULT_RESAMPLES
        completion = await self._call_with_retries(body, text_required, resamples)
        if key is not None and self.settings.cache_mode == "read-write":
            self._cache_write(key, completion)
        return completion

    @property
    def _server(self) -> str:
        return self.settings.base_url or ""

    def _resampled(self, body: dict[str, Any], tries: int) -> dict[str, Any]:
        """``body`` with another seed, for its ``tries``-th new try after unreadable answers."""
        seed = body.get("seed")
        fresh = (seed + _SEED_STEP * tries) % 2**31 if isinstance(seed, int) else self.rng.randrange(2**31)
        return {**body, "seed": fresh}

    async def _call_with_retries(
        self, body: dict[str, Any], text_required: bool = False, resamples: int = 0
    ) -> Completion:
        attempts = self.settings.max_retries + 1
        timeout = self.settings.timeout
        notes: list[str] = []
        sent = 0
        attempt = 0
        unreadable = 0
        asked = body
        while attempt < attempts:
            attempt += 1
            sent += 1
            wire = asked
            if _RESPONSE_FORMAT in asked and self._server in _prompt_only_servers:
                wire = {k: v for k, v in asked.items() if k != _RESPONSE_FORMAT}
            try:
                data = await self._post(wire, timeout)
                completion = self._account(data, sent, _tool_names(body), notes)
                if text_required and not completion.content.strip():
                    raise _EmptyAnswer("no text in the answer")
                return completion
            except openai.APIStatusError as exc:
                if _unreadable_answer(exc):
                    notes.append(UNREADABLE)
                    if unreadable >= resamples or body.get("temperature") == 0:
                        raise LLMError("model", _cause(exc, refused=True), sent) from exc
                    unreadable += 1
                    asked = self._resampled(body, unreadable)
                    attempt -= 1  # the server is fine: no retry of the budget spent, no wait
                    continue
                if not isinstance(exc, _RETRYABLE):
                    if wire is asked and _RESPONSE_FORMAT in asked and _names_response_format(exc):
                        _prompt_only_servers.add(self._server)  # ask again, without it: no retry spent
                        notes.append(PROMPT_ONLY)
                        attempt -= 1
                        continue
                    raise LLMError("request", _cause(exc, refused=True), sent) from exc
                failure: Exception = exc
            except (*_RETRYABLE, _EmptyAnswer) as exc:
                failure = exc
            cause = _cause(failure)
            if isinstance(failure, openai.APITimeoutError) and "refused" not in cause:
                cause += f" (no answer within {timeout:g} s)"
                notes.append(TIMEOUT)
                timeout = min(timeout * 2, self.settings.timeout * TIMEOUT_GROWTH)
            if attempt == attempts:
                raise LLMError("infrastructure", cause, sent) from failure
            backoff = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (attempt - 1))
            wait = max(min(_retry_after(failure), self.settings.backoff_max), self.rng.uniform(0, backoff))
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    def _gate(self) -> asyncio.Semaphore | None:
        """The bound on requests in flight to this client's server, shared in this event loop (this
        process's share of it, when the run is spread over workers: :mod:`apigen_gym.llm.budget`)."""
        limit = self.settings.max_in_flight
        if limit is None:
            return None
        gates = _gates.setdefault(asyncio.get_running_loop(), {})
        gate = gates.get(self._server)
        if gate is None:
            gate = gates[self._server] = asyncio.Semaphore(budget.share(limit))
        return gate

    async def _post(self, body: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        payload = jsonio.to_wire(body)
        wait = None if timeout == self.settings.timeout else timeout
        gate = self._gate()
        if gate is None:
            content = await self._channel().send(payload, wait)
        else:
            async with gate:
                content = await self._channel().send(payload, wait)
        try:
            data = jsonio.from_wire(content)
            message = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _EmptyAnswer("no message in the answer") from exc
        if not isinstance(message, dict):
            raise _EmptyAnswer("no message in the answer")
        return data  # type: ignore[no-any-return]

    def _account(
        self, data: dict[str, Any], attempts: int, tool_names: Sequence[str] = (), notes: Sequence[str] = ()
    ) -> Completion:
        raw = data.get("usage") or {}
        usage = Usage(
            prompt_tokens=int(raw.get("prompt_tokens") or 0),
            completion_tokens=int(raw.get("completion_tokens") or 0),
        )
        price = self.settings.price()
        cost = (
            0.0
            if price is None
            else (usage.prompt_tokens * price.prompt + usage.completion_tokens * price.completion) / 1e6
        )
        choice = data["choices"][0]
        finish = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
        message, mended = normalize_message(choice["message"], tool_names, finish)
        self.usage = self.usage + usage
        self.cost += cost
        self.calls += 1
        return Completion(
            message=message,
            usage=usage,
            cost=cost,
            attempts=attempts,
            finish_reason=finish,
            notes=[*notes, *mended],
        )

    def _cache_path(self, key: str) -> Path:
        assert self.settings.cache_dir is not None
        return self.settings.cache_dir / key[:2] / f"{key}.json"

    def _cache_read(self, key: str) -> Completion | None:
        path = self._cache_path(key)
        if not path.is_file():
            return None
        try:
            found = Completion.model_validate_json(path.read_text(encoding="utf-8"))
        except ValueError:
            return None  # a damaged entry is a miss
        return found.model_copy(update={"cached": True})

    def _cache_write(self, key: str, completion: Completion) -> None:
        jsonio.atomic_write_text(self._cache_path(key), completion.model_dump_json())

    async def aclose(self) -> None:
        """Close the client's connections: those of this event loop here, the others on their loops."""
        self._forget_parents_channels()
        channels, self._channels = self._channels, {}
        here = asyncio.get_running_loop()
        for loop, channel in channels.items():
            if loop is here or not loop.is_running():
                await channel.close()
            else:
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(channel.close(), loop))

    def close(self) -> None:
        """Close the client's connections from synchronous code, each pool on the event loop it
        belongs to (a loop that is not running any more: on the process's background loop). Inside a
        coroutine, ``await aclose()`` instead (here the pools of that coroutine's own loop are closed
        only once it next waits)."""
        self._forget_parents_channels()
        channels, self._channels = self._channels, {}
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, channel in channels.items():
            if loop is current:
                task = loop.create_task(channel.close())
                _closing.add(task)
                task.add_done_callback(_closing.discard)
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(channel.close(), loop).result()
            else:
                run_sync(channel.close())
