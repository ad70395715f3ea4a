"""A finished episode as token ids with a loss mask, rendered by a Hugging Face tokenizer's chat template.

``prompt_ids`` are the conversation up to the first assistant turn with the generation prompt (system
with the tools, the user's first message); ``completion_ids`` the rest; ``loss_mask`` is 1 on the tokens
the model wrote (each assistant message up to and including its end-of-turn token) and 0 on system,
user and tool tokens and on the template's own glue (role headers, the newline after an end-of-turn).

The ids are cut from the template's own renderings of growing prefixes of the conversation (before
each assistant turn, with the generation prompt, and after it), so ``prompt_ids + completion_ids``
is exactly the template's rendering of the whole conversation, and every assistant turn starts where
the template puts it when the model is asked to generate. A template that renders an earlier part of
the conversation differently once more messages follow (e.g. one that drops past reasoning) cannot be
cut this way: that raises a ``ValueError`` naming the message; pass a prefix-preserving template as
``chat_template`` (TRL's ``get_training_chat_template`` makes one for the templates it knows).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class ChatTokenizer(Protocol):
    """What is used of a Hugging Face tokenizer (``transformers`` is not imported here)."""

    eos_token_id: int | None

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class TokenizedEpisode:
    prompt_ids: list[int]
    completion_ids: list[int]
    loss_mask: list[int]
    """One per completion token: 1 where the model wrote it, 0 elsewhere."""

    @property
    def input_ids(self) -> list[int]:
        return self.prompt_ids + self.completion_ids


def chat_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The env's OpenAI-format messages as chat templates expect them: tool-call arguments as objects
    (left as text when they are not valid JSON), missing content as an empty string."""
    out = []
    for message in messages:
        m = dict(message)
        if m.get("content") is None:
            m["content"] = ""
        if m.get("tool_calls"):
            m["tool_calls"] = [_with_object_arguments(call) for call in m["tool_calls"]]
        out.append(m)
    return out


def _with_object_arguments(call: Mapping[str, Any]) -> dict[str, Any]:
    function = dict(call.get("function") or {})
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            parsed = arguments
        function["arguments"] = parsed if isinstance(parsed, dict) else arguments
    return {**call, "function": function}


def _render(
    tokenizer: ChatTokenizer, messages: list[dict[str, Any]], generation_prompt: bool, options: dict[str, Any]
) -> list[int]:
    ids = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=generation_prompt, return_dict=False, **options
    )
    if isinstance(ids, Mapping):
        ids = ids["input_ids"]
    if ids and isinstance(ids[0], list):  # a batch of one
        ids = ids[0]
    return [int(i) for i in ids]


def _extend(done: list[int], rendered: list[int], index: int, messages: list[dict[str, Any]]) -> list[int]:
    """The tokens ``rendered`` adds after ``done``; a ValueError when ``done`` is not its prefix."""
    if rendered[: len(done)] != done:
        role = messages[index]["role"] if index < len(messages) else "generation prompt"
        raise ValueError(
            f"the chat template renders the conversation differently once message {index} ({role}) follows: "
            "it is not prefix-preserving; pass a prefix-preserving chat_template"
        )
    return rendered[len(done) :]


def tokenize_episode(
    messages: Sequence[Mapping[str, Any]],
    tokenizer: ChatTokenizer,
    tools: list[dict[str, Any]] | None = None,
    **template_kwargs: Any,
) -> TokenizedEpisode:
    """Render ``messages`` (OpenAI chat format, as ``env.messages``) into prompt and completion ids and a
    loss mask. ``tools`` (the env's schemas) are rendered where the template puts them; other keyword
    arguments (``chat_template``, ``enable_thinking``, ...) go to ``apply_chat_template``."""
    chat = chat_messages(messages)
    options = dict(template_kwargs)
    if tools is not None:
        options["tools"] = tools
    first = next((i for i, m in enumerate(chat) if m["role"] == "assistant"), len(chat))
    prompt = _render(tokenizer, chat[:first], first < len(chat), options) if first else []
    done = list(prompt)
    completion: list[int] = []
    mask: list[int] = []
    eos = tokenizer.eos_token_id
    start = first
    for end in range(first, len(chat) + 1):
        if end < len(chat) and chat[end]["role"] != "assistant":
            continue
        if end > start:  # user, tool and system messages since the last assistant turn
            glue = _extend(done, _render(tokenizer, chat[:end], end < len(chat), options), start, chat)
            completion += glue
            mask += [0] * len(glue)
            done += glue
        if end == len(chat):
            break
        written = _extend(done, _render(tokenizer, chat[: end + 1], False, options), end, chat)
        last = max((i for i, token in enumerate(written) if token == eos), default=len(written) - 1)
        completion += written
        mask += [1] * (last + 1) + [0] * (len(written) - last - 1)
        done += written
        start = end + 1
    return TokenizedEpisode(prompt, completion, mask)
