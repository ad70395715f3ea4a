"""How :class:`apigen_gym.llm.client.LLMClient` puts a chat-completions request on the wire.

Both channels start from the same ``openai.AsyncOpenAI`` client, which decides what a request is: the
URL under its base URL, its headers (authorization, user agent, platform) and how a failure status
becomes an exception (``RateLimitError`` for 429, ``InternalServerError`` for 5xx, ...). They differ
in who sends the bytes:

- ``aiohttp`` (the default): the request the client would send, on one pooled aiohttp session (the
  HTTP library of the client's own ``DefaultAioHttpClient``). A failure is raised as the exception
  the client raises for it, built by the client from the answer. This skips the client's per-request
  plumbing (request options model, URL and header merging, the httpx-style wrapping of aiohttp),
  which costs more CPU than the HTTP exchange itself: 0.7–1 ms per call here, at latency 0 and at
  1 s (``benchmarks/harness.py`` measures both transports).
- ``openai``: through ``AsyncOpenAI.post``, the client's whole stack, for setups that rely on it.

A channel belongs to one event loop; :class:`~apigen_gym.llm.client.LLMClient` keeps one per loop.
"""

from __future__ import annotations

import asyncio
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Literal

import aiohttp
import openai

try:  # the HTTP library the installed openai is built on
    import httpx2 as http
except ImportError:  # openai < 3
    import httpx as http  # type: ignore[no-redef]

if TYPE_CHECKING:
    from apigen_gym.llm.settings import LLMSettings

Transport = Literal["aiohttp", "openai"]
PATH = "/chat/completions"
_JSON = {"Content-Type": "application/json"}


def openai_client(settings: LLMSettings, http_client: http.AsyncClient | None = None) -> openai.AsyncOpenAI:
    """The ``openai`` client for ``settings``; retries stay with the caller (labelled, counted)."""
    return openai.AsyncOpenAI(
        api_key=settings.api_key or "no-key",
        base_url=settings.base_url,
        timeout=settings.timeout,
        max_retries=0,
        http_client=http_client,
    )


class Channel:
    """Sends a JSON body to the chat-completions endpoint and returns the answer's bytes.

    Raises the ``openai`` exception for the failure: ``APIStatusError`` subclasses for error
    statuses, ``APITimeoutError``, ``APIConnectionError``.
    """

    async def send(self, payload: bytes, timeout: float | None = None) -> bytes:
        """POST ``payload``; ``timeout`` (seconds) replaces the settings' for this request."""
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class OpenAIChannel(Channel):
    """Through ``AsyncOpenAI.post`` on the client's aiohttp transport (a raw response, no parsing)."""

    def __init__(self, settings: LLMSettings):
        transport = getattr(openai, "DefaultAioHttpClient", openai.DefaultAsyncHttpxClient)
        pool = transport(
            limits=http.Limits(
                max_connections=settings.max_connections,
                max_keepalive_connections=settings.max_connections,
            ),
        )
        self.client = openai_client(settings, pool)

    async def send(self, payload: bytes, timeout: float | None = None) -> bytes:
        post = self.client.post
        if timeout is None:
            response = await post(
                PATH, cast_to=http.Response, content=payload, options={"headers": dict(_JSON)}
            )
        else:
            response = await post(
                PATH,
                cast_to=http.Response,
                content=payload,
                options={"headers": dict(_JSON), "timeout": timeout},
            )
        return response.content

    async def close(self) -> None:
        await self.client.close()


class AiohttpChannel(Channel):
    """The client's request, sent on a pooled aiohttp session; failures raised as the client would."""

    def __init__(self, settings: LLMSettings):
        self.client = openai_client(settings)
        self.url = str(self.client.base_url).rstrip("/") + PATH
        given = {
            **self.client.default_headers,
            **self.client.auth_headers,
            **_JSON,
            # what the client adds per request: its own retries are off, the read timeout is ours
            "x-stainless-retry-count": "0",
            "x-stainless-read-timeout": str(float(settings.timeout)),
        }
        self.headers = {name: value for name, value in given.items() if isinstance(value, str)}
        # for https, the certificates the client's HTTP library trusts (system store, SSL_CERT_FILE)
        verify = http.create_ssl_context() if self.url.startswith("https:") else True
        self.timeout = _timeouts(settings.timeout)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=settings.max_connections, limit_per_host=0, ssl=verify),
            timeout=self.timeout,
        )
        self.proxy = env_proxy(self.url)

    async def send(self, payload: bytes, timeout: float | None = None) -> bytes:
        limits = self.timeout if timeout is None else _timeouts(timeout)
        try:
            async with self.session.post(
                self.url, data=payload, headers=self.headers, proxy=self.proxy, timeout=limits
            ) as response:
                content = await response.read()
                if response.status >= 400:
                    raise self._status_error(response.status, response.raw_headers, content)
                return content
        except asyncio.TimeoutError as exc:  # before ClientError: aiohttp's timeouts are both
            raise openai.APITimeoutError(request=self._request()) from exc
        except aiohttp.ClientError as exc:
            raise openai.APIConnectionError(request=self._request()) from exc

    def _request(self) -> http.Request:
        return http.Request("POST", self.url)

    def _status_error(
        self, status: int, headers: tuple[tuple[bytes, bytes], ...], content: bytes
    ) -> openai.APIStatusError:
        response = http.Response(status, headers=list(headers), content=content, request=self._request())
        return self.client._make_status_error_from_response(response)

    async def close(self) -> None:
        await self.session.close()
        await self.client.close()


def _timeouts(seconds: float) -> aiohttp.ClientTimeout:
    """No total limit: connecting, and each wait for bytes, may take ``seconds``."""
    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_connect=seconds, sock_read=seconds)


def env_proxy(url: str) -> str | None:
    """The proxy that ``HTTP(S)_PROXY`` / ``ALL_PROXY`` and ``NO_PROXY`` set for ``url``, if any.

    Read once per channel: aiohttp's own ``trust_env`` reads the environment again on every request,
    which costs more CPU than the rest of the request.
    """
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.netloc):
        return None
    return proxy


def open_channel(settings: LLMSettings) -> Channel:
    """A channel of the settings' transport (inside the event loop that will use it)."""
    return OpenAIChannel(settings) if settings.transport == "openai" else AiohttpChannel(settings)
