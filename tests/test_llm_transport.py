"""The two transports of :mod:`apigen_gym.llm.transport` put the same request on the wire and fail alike.

A small recording server on 127.0.0.1 answers whatever status it is told to and keeps every request it
received, so the ``aiohttp`` transport can be compared with the ``openai`` client's own stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import trustme
from aiohttp import web

from apigen_gym.llm.settings import LLMSettings, Transport
from apigen_gym.llm.transport import env_proxy, open_channel

BODY = {"model": "m", "messages": [{"role": "user", "content": "grüß dich"}], "temperature": 0.0}
WIRE_ONLY = {"host", "connection", "content-length"}
"""Headers each HTTP stack sets for itself."""


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


class RecordingServer:
    """Answers ``status`` with ``answer`` (after ``delay`` seconds) and records each request."""

    def __init__(self, status: int = 200, answer: Any = None, headers: dict[str, str] | None = None):
        self.status = status
        self.answer = answer if answer is not None else {"choices": [{"message": {"content": "hi"}}]}
        self.headers = headers or {}
        self.delay = 0.0
        self.seen: list[Seen] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(Seen(request.path, dict(request.headers), await request.read()))
        await asyncio.sleep(self.delay)
        return web.json_response(self.answer, status=self.status, headers=self.headers)

    @contextlib.asynccontextmanager
    async def serving(self, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
        """Serve on a free loopback port (TLS when ``tls`` is given); yield the origin URL."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls).start()
        try:
            yield f"{'https' if tls else 'http'}://127.0.0.1:{runner.addresses[0][1]}"
        finally:
            await runner.cleanup()

    async def send(
        self, transport: Transport, payload: bytes, timeout: float = 5.0, tls: ssl.SSLContext | None = None
    ) -> bytes:
        """One request to this server through a fresh channel of ``transport``."""
        async with self.serving(tls) as origin:
            return await send_once(f"{origin}/v1", transport, payload, timeout)


async def send_once(base_url: str, transport: Transport, payload: bytes, timeout: float = 5.0) -> bytes:
    """One request through a fresh channel of ``transport``, closed afterwards."""
    channel = open_channel(settings(base_url, transport, timeout))
    try:
        return await channel.send(payload)
    finally:
        await channel.close()


def settings(base_url: str, transport: Transport, timeout: float = 5.0) -> LLMSettings:
    return LLMSettings(model="m", base_url=base_url, api_key="sk-test", transport=transport, timeout=timeout)


def comparable(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items() if name.lower() not in WIRE_ONLY}


def exchange(server: RecordingServer, transport: Transport, **kwargs: Any) -> bytes:
    return asyncio.run(server.send(transport, json.dumps(BODY).encode(), **kwargs))


def failure_of(server: RecordingServer, transport: Transport, **kwargs: Any) -> openai.APIError:
    with pytest.raises(openai.APIError) as raised:
        exchange(server, transport, **kwargs)
    return raised.value


def test_both_transports_send_the_same_request() -> None:
    server = RecordingServer()
    answers = [exchange(server, transport) for transport in ("aiohttp", "openai")]
    direct, client = server.seen
    assert answers[0] == answers[1] and json.loads(answers[0]) == server.answer
    assert direct.path == client.path == "/v1/chat/completions"
    assert json.loads(direct.body) == json.loads(client.body) == BODY
    assert comparable(direct.headers) == comparable(client.headers)
    sent = comparable(direct.headers)
    assert sent["authorization"] == "Bearer sk-test" and sent["content-type"] == "application/json"
    assert sent["user-agent"].startswith("AsyncOpenAI/Python")


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
        (422, openai.UnprocessableEntityError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_error_statuses_raise_the_clients_exceptions(status: int, error_type: type[Exception]) -> None:
    answer = {"error": {"message": "it went wrong", "type": "test", "code": "oops"}}
    server = RecordingServer(status, answer, headers={"retry-after-ms": "25"})
    errors = [failure_of(server, transport) for transport in ("aiohttp", "openai")]
    for error in errors:
        assert type(error) is error_type
        assert isinstance(error, openai.APIStatusError) and error.status_code == status
        assert error.body == answer["error"] and "it went wrong" in str(error)
        assert error.response.headers["retry-after-ms"] == "25"
    assert str(errors[0]) == str(errors[1])


def test_a_slow_answer_is_a_timeout_on_both() -> None:
    server = RecordingServer()
    server.delay = 2.0
    for transport in ("aiohttp", "openai"):
        assert isinstance(failure_of(server, transport, timeout=0.2), openai.APITimeoutError)


@pytest.mark.parametrize("transport", ["aiohttp", "openai"])
def test_a_refused_connection_is_a_connection_error(refused_url: str, transport: Transport) -> None:
    with pytest.raises(openai.APIConnectionError):
        asyncio.run(send_once(refused_url, transport, b"{}"))


# --- proxies from the environment ----------------------------------------------------------------


@pytest.fixture()
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_env_proxy_follows_the_proxy_variables(no_proxy_env: pytest.MonkeyPatch) -> None:
    assert env_proxy("http://api.example.test/v1/chat/completions") is None
    no_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    no_proxy_env.setenv("HTTPS_PROXY", "http://127.0.0.1:3129")
    assert env_proxy("http://api.example.test/v1/chat/completions") == "http://127.0.0.1:3128"
    assert env_proxy("https://api.example.test/v1/chat/completions") == "http://127.0.0.1:3129"
    no_proxy_env.setenv("NO_PROXY", "example.test,localhost")
    assert env_proxy("https://api.example.test:8443/v1/chat/completions") is None
    assert env_proxy("http://localhost:8000/v1/chat/completions") is None
    assert env_proxy("http://other.test/v1/chat/completions") == "http://127.0.0.1:3128"


def test_the_aiohttp_transport_goes_through_the_environments_proxy(no_proxy_env: pytest.MonkeyPatch) -> None:
    """The base URL's host is never resolved: the loopback proxy receives the request for it."""
    proxy = RecordingServer()

    async def through_proxy() -> bytes:
        async with proxy.serving() as origin:
            no_proxy_env.setenv("HTTP_PROXY", origin)
            return await send_once("http://api.example.invalid/v1", "aiohttp", json.dumps(BODY).encode())

    assert json.loads(asyncio.run(through_proxy())) == proxy.answer
    (seen,) = proxy.seen
    assert seen.headers["Host"] == "api.example.invalid" and json.loads(seen.body) == BODY


# --- TLS ----------------------------------------------------------------------------------------------


@pytest.fixture()
def tls_server_context(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a certificate for 127.0.0.1 from a throwaway CA, and that CA's file."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    return context, ca_file


@pytest.mark.parametrize("transport", ["aiohttp", "openai"])
def test_https_trusts_what_the_client_trusts(
    tls_server_context: tuple[ssl.SSLContext, Path], transport: Transport, no_proxy_env: pytest.MonkeyPatch
) -> None:
    context, ca_file = tls_server_context
    server = RecordingServer()
    no_proxy_env.delenv("SSL_CERT_DIR", raising=False)
    no_proxy_env.setenv("SSL_CERT_FILE", str(ca_file))  # the throwaway CA is trusted
    assert json.loads(exchange(server, transport, tls=context)) == server.answer
    no_proxy_env.delenv("SSL_CERT_FILE")  # the system store does not know it
    with pytest.raises(openai.APIConnectionError):
        exchange(server, transport, tls=context)
    assert len(server.seen) == 1  # the refused handshake never reached the handler
