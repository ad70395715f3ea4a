"""What the run's statistics count of one dialogue: its turns, its tool calls and the words of each
side's text turns, taken from the messages once, where the dialogue is played (a Ray worker, or the
driver's own process), so that the driver adds them up without reading the conversation again.

A worker sends each side's words as their counts and the bigrams it has not sent before in the job
(:meth:`DialogueFacts.to_send`): distinct-2 needs only the set of all bigrams, which the driver already
holds for the others."""

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


Bigram = tuple[str, str]
Sent = tuple[set[Bigram], set[Bigram]]
"""The bigrams of kept dialogues a worker has sent in a job: the user's, the assistant's."""


@dataclass(frozen=True)
class SideCounts:
    """One side's text turns as distinct-2 counts them: turns, bigrams (with repeats), and those of its
    bigrams that its worker had not sent before."""

    turns: int
    bigrams: int
    new: list[Bigram]

    @classmethod
    def of(cls, turns: list[list[str]], seen: set[Bigram]) -> SideCounts:
        """``turns``' counts, with the bigrams not in ``seen`` (added to it)."""
        total = 0
        new: list[Bigram] = []
        for tokens in turns:
            total += max(len(tokens) - 1, 0)
            for pair in zip(tokens, tokens[1:]):
                if pair not in seen:
                    seen.add(pair)
                    new.append(pair)
        return cls(len(turns), total, new)


@dataclass(frozen=True)
class DialogueFacts:
    """One conversation as the statistics see it."""

    turns: int
    """User and assistant messages."""
    calls: list[tuple[str, bool]]
    """Every tool call: (tool name, whether it succeeded)."""
    user: list[list[str]] | SideCounts
    """The words of each user turn with text (their counts, as a worker sends them)."""
    agent: list[list[str]] | SideCounts
    """The words of each assistant turn with text (their counts, as a worker sends them)."""

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

    def to_send(self, sent: Sent) -> DialogueFacts:
        """These facts as a worker sends them: each side's words as counts and the bigrams not in
        ``sent``, that side's bigrams the worker has sent in this job (added to it)."""
        if isinstance(self.user, SideCounts) or isinstance(self.agent, SideCounts):
            return self
        user, agent = SideCounts.of(self.user, sent[0]), SideCounts.of(self.agent, sent[1])
        return DialogueFacts(self.turns, self.calls, user, agent)
