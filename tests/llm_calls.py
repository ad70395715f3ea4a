"""One LLM call from a test: ``complete`` on a fresh event loop, the client's HTTP pool closed after."""

from __future__ import annotations

import asyncio
from typing import Any

from apigen_gym.llm.client import LLMClient
from apigen_gym.llm.types import Completion


def complete_once(client: LLMClient, messages: Any, **kwargs: Any) -> Completion:
    async def go() -> Completion:
        try:
            return await client.complete(messages, **kwargs)
        finally:
            await client.aclose()

    return asyncio.run(go())
