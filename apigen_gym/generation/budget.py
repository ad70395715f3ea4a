"""Prompt budgets for the generation roles: a conservative token estimate, and JSON cut down to fit.

Many local models have 8k-token contexts; a prompt that does not fit is refused by the server (a 400)
before the model sees it. The proposer and the judges build their prompts at decreasing levels of
detail until :func:`messages_tokens` says the prompt fits the run's budget.

The estimate counts every digit as a token, words by pieces of six letters and most punctuation as a
token. On this project's prompts it is 4–19 % above the count of SmolLM2's tokenizer, which splits
numbers into digits (as Qwen2.5's and Llama 2's do); larger-vocabulary tokenizers count fewer still.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

DEFAULT_PROMPT_BUDGET = 5000
"""Prompt tokens a generation request may hold by default: in an 8,192-token context this leaves room
for the proposer's answer (2,048 tokens by default) and for the estimate's error."""
MIN_PROMPT_BUDGET = 1000
"""Below this, not even the proposer's instructions fit."""
MESSAGE_OVERHEAD = 8
"""Tokens a chat template adds around each message (role markers, separators)."""
WORD_PIECE = 6
"""Letters per token counted for words."""
PUNCTUATION_WEIGHT = 0.8
"""Tokens per punctuation character (tokenizers merge a few, such as ``":"``)."""
MORE = "…"
"""The key (in a mapping) or the item (in a list) that says how many entries were left out."""
_DIGIT = re.compile(r"\d")
_WORD = re.compile(r"[^\W\d_]+")
_PUNCTUATION = re.compile(r"[^\w\s]|_")
D = TypeVar("D")


class PromptTooLong(ValueError):
    """Even the least detailed prompt is over the budget."""


def fitted(
    details: Sequence[D], render: Callable[[D], list[dict[str, str]]], budget: int, what: str
) -> list[dict[str, str]]:
    """The messages ``render`` makes of the first of ``details`` (most detailed first) whose estimate
    fits ``budget``; :class:`PromptTooLong` naming ``what`` when none does."""
    size = 0
    for detail in details:
        messages = render(detail)
        size = messages_tokens(messages)
        if size <= budget:
            return messages
    raise PromptTooLong(
        f"prompt: the shortest {what} is about {size} tokens, over the budget of {budget} "
        "(raise the prompt budget, --prompt-budget)"
    )


def estimate_tokens(text: str) -> int:
    """A conservative estimate of the tokens ``text`` takes."""
    digits = len(_DIGIT.findall(text))
    words = sum(1 + (len(word) - 1) // WORD_PIECE for word in _WORD.findall(text))
    return digits + words + round(PUNCTUATION_WEIGHT * len(_PUNCTUATION.findall(text)))


def messages_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """The estimated prompt tokens of a chat request's messages."""
    return sum(MESSAGE_OVERHEAD + estimate_tokens(str(m.get("content") or "")) for m in messages)


def _strings(value: Any, keys: bool = True) -> Iterable[str]:
    """Every string in a JSON-like value, mapping keys included unless not ``keys``."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if keys:
                yield str(key)
            yield from _strings(item, keys)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item, keys)


def ids_in(values: Iterable[Any]) -> frozenset[str]:
    """The strings in ``values`` (mapping keys included) that hold a digit: ids, dates, codes."""
    return frozenset(text for value in values for text in _strings(value) if _DIGIT.search(text))


def _picked(size: int, width: int, wanted: Sequence[int]) -> list[int]:
    """``width`` positions of ``size``: the ``wanted`` ones first, then spread evenly, in order."""
    chosen = list(dict.fromkeys(wanted))[:width]
    spare = [i for i in range(size) if i not in chosen]
    room = width - len(chosen)
    if room > 0 and spare:
        step = len(spare) / room
        chosen += [spare[int(n * step)] for n in range(min(room, len(spare)))]
    return sorted(chosen)


def _mentions(value: Any, keep: frozenset[str]) -> bool:
    return any(text in keep for text in _strings(value, keys=False))


LONG_MAPPING = 12
"""A mapping with more plain values than this, all of one type, is a collection (seats left by date),
not a record's fields."""


def _is_collection(value: Mapping[str, Any]) -> bool:
    """A mapping of like entries by key (variants by item id, dates, travellers), not a record's fields."""
    items = list(value.values())
    if len(items) > 1 and all(isinstance(item, Mapping) for item in items):
        return True
    return len(items) > LONG_MAPPING and len({type(item) for item in items}) == 1


def trimmed(value: Any, width: int, keep: frozenset[str] = frozenset()) -> Any:
    """``value`` with every list and every mapping of like entries cut to ``width`` entries: those
    naming a ``keep`` string first, the others spread evenly, and a :data:`MORE` entry saying how many
    were left out. A record's fields are never dropped, and a list of plain values is cut only at four
    times ``width``."""
    if isinstance(value, Mapping):
        items = list(value.items())
        if _is_collection(value) and len(items) > width:
            wanted = [i for i, (key, _) in enumerate(items) if key in keep]
            positions = _picked(len(items), width, wanted)
            out = {str(items[i][0]): trimmed(items[i][1], width, keep) for i in positions}
            out[MORE] = f"{len(items) - len(positions)} more"
            return out
        return {str(key): trimmed(item, width, keep) for key, item in items}
    if isinstance(value, (list, tuple)):
        plain = all(not isinstance(item, (Mapping, list, tuple)) for item in value)
        limit = 4 * width if plain else width
        if len(value) <= limit:
            return [trimmed(item, width, keep) for item in value]
        wanted = [i for i, item in enumerate(value) if _mentions(item, keep)]
        positions = _picked(len(value), limit, wanted)
        return [trimmed(value[i], width, keep) for i in positions] + [f"{MORE} {len(value) - limit} more"]
    return value


def clipped(text: str, chars: int | None) -> str:
    """``text`` cut to about ``chars`` characters at a line or sentence end (``None``: as it is)."""
    if chars is None or len(text) <= chars:
        return text
    head = text[:chars]
    end = max(head.rfind("\n"), head.rfind(". "))
    return (head[: end + 1] if end > chars // 2 else head).rstrip() + " …"
