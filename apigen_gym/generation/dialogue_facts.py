"""What the run's statistics count of one dialogue: its turns, its tool calls and the words of each
side's text turns, taken from the messages once, where the dialogue is played (a Ray worker, or the
driver's own process), so that the driver adds them up without reading the conversation again."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from apigen_gym.core.tools import ERROR_PREFIX
from apigen_gym.core.user import STOP

_WORD = re.compile(r"[a-z0-9$#]+(?:['.,/-][a-z0-9]+)*")


def words(text: str) -> list[str]:
    """A message's words, lower-cased (the ``###STOP###`` control message is not language).

    Interned: a word is one object wherever it occurs, so a batch of dialogues sent to the driver
    carries each of its words once (pickling keeps one copy of an object) and the driver reads and
    hashes half as many; unpickling a Phase 2 batch and counting its bigrams took half the time.
    """
    return list(map(sys.intern, _WORD.findall(text.replace(STOP, " ").lower())))


def tool_calls(messages: Sequence[Mapping[str, Any]]) -> list[tuple[str, bool]]:
    """Every tool call of a conversation as (tool name, whether it succeeded)."""
    outputs = {
        m.get("tool_call_id"): str(m.get("content") or "") for m in messages if m.get("role") == "tool"
    }
    calls = []
    for m in messages:
        for call in m.get("tool_calls") or []:
            name = str((call.get("function") or {}).get("name", ""))
            calls.append((name, not outputs.get(call.get("id"), "").startswith(ERROR_PREFIX)))
    return calls


@dataclass(frozen=True)
class DialogueFacts:
    """One conversation as the statistics see it."""

    turns: int
    """User and assistant messages."""
    calls: list[tuple[str, bool]]
    """Every tool call: (tool name, whether it succeeded)."""
    user: list[list[str]]
    """The words of each user turn with text."""
    agent: list[list[str]]
    """The words of each assistant turn with text."""

    @classmethod
    def of(cls, messages: Sequence[Mapping[str, Any]]) -> DialogueFacts:
        turns = 0
        user: list[list[str]] = []
        agent: list[list[str]] = []
        for m in messages:
            role = m.get("role")
            if role not in ("user", "assistant"):
                continue
            turns += 1
            content = m.get("content")
            if isinstance(content, str) and content.strip():
                (user if role == "user" else agent).append(words(content))
        return cls(turns, tool_calls(messages), user, agent)
