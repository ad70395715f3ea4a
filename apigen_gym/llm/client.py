"""One small layer over the ``openai`` package for every LLM call the project makes.

- Works with any ``/v1/chat/completions`` server (OpenAI, vLLM, SGLang, Ollama, the project's own
  loopback server); model, base URL and key come from arguments or the usual ``OPENAI_*`` variables.
- Retries 429, 5xx, timeouts, dropped connections and empty answers with exponential backoff and
  full jitter; after the last retry raises :class:`LLMError` labelled ``infrastructure``. Requests
  the server rejects as such (400: bad request or context too long, 401, 403, 404, 422) are labelled
  ``request`` and not retried.
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
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import openai

from apigen_gym.llm.settings import LLMSettings
from apigen_gym.llm.transport import Channel, open_channel
from apigen_gym.llm.types import Completion, LLMError, Usage
from apigen_gym.util import jsonio

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


def _cause(exc: Exception) -> str:
    """What failed, for the label: the error class and status, or a refused connection."""
    link: BaseException | None = exc
    while link is not None:  # the aiohttp transport reports a refused connection as a connect timeout
        if type(link).__name__ == "ClientConnectorError" or isinstance(link, ConnectionRefusedError):
            return "APIConnectionError (connection refused)"
        link = link.__cause__ or link.__context__
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}" + (f" ({status})" if status else "")


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
        self._channels: dict[int, Channel] = {}

    def _channel(self) -> Channel:
        loop = id(asyncio.get_running_loop())
        channel = self._channels.get(loop)
        if channel is None:
            channel = self._channels[loop] = open_channel(self.settings)
        return channel

    def request_body(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None, **params: Any
    ) -> dict[str, Any]:
        """The JSON body of a chat-completions request."""
        body: dict[str, Any] = {"model": self.settings.model, "messages": list(messages)}
        if tools:
            body["tools"] = list(tools)
        defaults = {
            "temperature": self.settings.temperature,
            "seed": self.settings.seed,
            "max_tokens": self.settings.max_tokens,
        }
        given = {key: value for key, value in params.items() if value is not None}  # None: keep the setting
        for key, value in {**defaults, **given}.items():
            if value is not None:
                body[key] = value
        return body

    async def complete(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        **params: Any,
    ) -> Completion:
        """One chat completion; raises :class:`LLMError` when no answer could be had."""
        body = self.request_body(messages, tools, **params)
        key = jsonio.digest(body) if self.settings.cache_dir is not None else None
        if key is not None and self.settings.cache_mode != "off":
            hit = self._cache_read(key)
            if hit is not None:
                return hit
            if self.settings.cache_mode == "replay":
                raise LLMError("infrastructure", "cache miss in replay mode", 0)
        completion = await self._call_with_retries(body)
        if key is not None and self.settings.cache_mode == "read-write":
            self._cache_write(key, completion)
        return completion

    async def _call_with_retries(self, body: dict[str, Any]) -> Completion:
        attempts = self.settings.max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self._account(await self._post(body), attempt)
            except openai.APIStatusError as exc:
                if not isinstance(exc, _RETRYABLE):
                    raise LLMError("request", _cause(exc), attempt) from exc
                failure: Exception = exc
            except (*_RETRYABLE, _EmptyAnswer) as exc:
                failure = exc
            if attempt == attempts:
                raise LLMError("infrastructure", _cause(failure), attempt) from failure
            backoff = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (attempt - 1))
            wait = max(min(_retry_after(failure), self.settings.backoff_max), self.rng.uniform(0, backoff))
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        content = await self._channel().send(jsonio.to_wire(body))
        try:
            data = jsonio.from_wire(content)
            message = data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _EmptyAnswer("no message in the answer") from exc
        if not isinstance(message, dict):
            raise _EmptyAnswer("no message in the answer")
        return data  # type: ignore[no-any-return]

    def _account(self, data: dict[str, Any], attempts: int) -> Completion:
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
        message = _clean_message(data["choices"][0]["message"])
        self.usage = self.usage + usage
        self.cost += cost
        self.calls += 1
        return Completion(message=message, usage=usage, cost=cost, attempts=attempts)

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
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


def _clean_message(message: dict[str, Any]) -> dict[str, Any]:
    """An assistant message with only the fields a chat request accepts back."""
    clean: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    calls = message.get("tool_calls")
    if calls:
        clean["tool_calls"] = [
            {"id": c.get("id"), "type": "function", "function": dict(c.get("function") or {})}
            for c in calls
            if isinstance(c, dict)
        ]
    return clean
