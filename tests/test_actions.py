"""Reading an agent's action: the usual JSON call read straight off its text, exactly as the general way
reads it, and the agent's own arguments text kept for the transcript."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from apigen_gym.core import actions
from apigen_gym.core.actions import AgentTurn, parse_action
from apigen_gym.core.env import ApigenEnv

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**66)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
SPACE = st.sampled_from(["", " ", "\n", "\t ", "  \r\n"])


def general(text: str) -> AgentTurn:
    """What the general reading gives (the fast path turned off)."""
    usual = actions._usual_call
    actions._usual_call = lambda _text: None  # type: ignore[assignment]
    try:
        return parse_action(text)
    finally:
        actions._usual_call = usual


@settings(max_examples=300, deadline=None)
@given(
    name=st.text(min_size=0, max_size=6),
    arguments=JSON_VALUES,
    spaces=st.lists(SPACE, min_size=8, max_size=8),
    trailer=st.sampled_from(["", "}", ",", ' "x"', "]"]),
    ascii_only=st.booleans(),
)
def test_the_usual_call_reads_as_the_general_way_reads_it(
    name: str, arguments: Any, spaces: list[str], trailer: str, ascii_only: bool
) -> None:
    a, b, c, d, e, f, g, h = spaces
    args_text = json.dumps(arguments, ensure_ascii=ascii_only)
    name_text = json.dumps(name, ensure_ascii=ascii_only)
    text = f'{a}{{{b}"name"{c}:{d}{name_text}{e},{f}"arguments"{g}:{args_text}{h}}}{trailer}'
    fast, slow = parse_action(text), general(text)
    assert repr([(t.name, t.arguments, t.error) for t in fast.tool_calls]) == repr(
        [(t.name, t.arguments, t.error) for t in slow.tool_calls]
    )  # type for type: 2**64 is an int on both ways
    assert fast.content == slow.content
    for call in fast.tool_calls:
        if call.error is None and call.arguments_json:
            assert repr(json.loads(call.arguments_json)) == repr(call.arguments)


def test_the_transcript_keeps_the_agents_own_arguments_text() -> None:
    env = ApigenEnv("retail")
    env.reset(seed=0)
    user = env.unwrapped.task.user_id
    sent = '{ "user_id":"' + user + '" }'
    env.step('{"name": "get_user_details",  "arguments": ' + sent + "}")
    env.step(
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "function": {"name": "get_user_details", "arguments": sent}}],
        }
    )
    calls = [m["tool_calls"][0]["function"] for m in env.unwrapped.messages if m.get("tool_calls")]
    assert [c["arguments"] for c in calls] == [sent, sent]
    tool_outputs = [m["content"] for m in env.unwrapped.messages if m["role"] == "tool"]
    assert len(tool_outputs) == 2 and all("payment_methods" in json.loads(out) for out in tool_outputs)
    # arguments given as an object (no text) are written in JSON's canonical form
    env.step({"name": "get_user_details", "arguments": {"user_id": user}})
    assert env.unwrapped.messages[-2]["tool_calls"][0]["function"]["arguments"] == json.dumps(
        {"user_id": user}
    )
