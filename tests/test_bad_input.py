"""Garbage in, error observations out: ``step`` never raises, whatever the agent sends.

Also the calculator: it never raises and agrees with Python's ``eval`` (τ-bench's implementation).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import apigen_gym  # noqa: F401 - registers the envs
from apigen_gym.core.user import STOP
from apigen_gym.domains.retail.tools import TOOLS
from apigen_gym.kit.arithmetic import ALLOWED, calculate

ENV_ID = "apigen/retail-v0"
SCHEMAS = [s["function"] for s in TOOLS.schemas]
TOOL_NAMES = [s["name"] for s in SCHEMAS]

# --- strategies -------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
realistic_strings = st.sampled_from(
    ["#W2378156", "#W5056519", "yusuf_rossi_9620", "credit_card_9513926", "1151293680", "1656367028", ""]
)


def value_for(prop: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A value of the right type for a schema property (mostly), or of any JSON type (sometimes)."""
    if "enum" in prop:
        right: st.SearchStrategy[Any] = st.sampled_from(prop["enum"]) | st.text(max_size=20)
    elif prop.get("type") == "array":
        right = st.lists(value_for(prop.get("items", {})), max_size=4)
    elif prop.get("type") == "string":
        right = realistic_strings | st.text(max_size=30)
    else:
        right = json_values
    return st.one_of(right, right, json_values)


@st.composite
def arguments_for(draw: st.DrawFn, schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments for a tool: each parameter present or missing, right or wrong type, plus extra keys."""
    props = schema["parameters"]["properties"]
    args: dict[str, Any] = {}
    for name, prop in props.items():
        if draw(st.integers(0, 9)) > 0:  # present most of the time
            args[name] = draw(value_for(prop))
    extras = draw(st.dictionaries(st.text(min_size=1, max_size=10), json_values, max_size=2))
    for key, value in extras.items():
        args.setdefault(key, value)
    return args


tool_call = st.sampled_from(SCHEMAS).flatmap(
    lambda schema: st.fixed_dictionaries(
        {"name": st.just(schema["name"]), "arguments": arguments_for(schema)}
    )
)
unknown_tool_call = st.fixed_dictionaries(
    {"name": st.text(max_size=30).filter(lambda n: n not in TOOL_NAMES), "arguments": json_values}
)
any_call = st.one_of(tool_call, tool_call, unknown_tool_call)
odd_dict = st.dictionaries(
    st.sampled_from(["name", "arguments", "function", "tool_calls", "role", "content", "id", "type"])
    | st.text(max_size=8),
    json_values,
    max_size=5,
)


@st.composite
def openai_tool_call(draw: st.DrawFn) -> Any:
    call = draw(any_call)
    arguments = draw(
        st.one_of(
            st.just(json.dumps(call["arguments"])),
            st.just(json.dumps(call["arguments"])[:-1]),  # truncated JSON
            st.just(call["arguments"]),  # a dict instead of a JSON string
            json_values,
        )
    )
    function: Any = draw(
        st.one_of(
            st.just({"name": call["name"], "arguments": arguments}),
            st.just({"arguments": arguments}),
            json_values,
        )
    )
    shape = draw(st.integers(0, 5))
    if shape == 0:
        return draw(json_values)
    if shape == 1:
        return {"function": function}
    ident = draw(st.one_of(st.text(max_size=10), json_values))
    return {"id": ident, "type": draw(st.sampled_from(["function", "other"])), "function": function}


openai_message = st.fixed_dictionaries(
    {"role": st.just("assistant")},
    optional={
        "content": st.one_of(st.none(), st.text(max_size=40), json_values),
        "tool_calls": st.one_of(st.lists(openai_tool_call(), max_size=3), json_values),
    },
)


@st.composite
def broken_json(draw: st.DrawFn) -> str:
    text = json.dumps(draw(any_call))
    cut = draw(st.integers(0, len(text)))
    junk = draw(st.sampled_from(["", "}", "]", ",", '"', "{", "\\", "\x00", "}}"]))
    return text[:cut] + junk


json_non_objects = (
    st.one_of(json_scalars, st.lists(json_values, max_size=4)).map(json.dumps).map(lambda s: s if s else "0")
)
huge_strings = st.one_of(
    st.builds(
        lambda c, n: c * n, st.sampled_from(["a", "{", "9", " ", "é", "\n"]), st.integers(10_000, 200_000)
    ),
    st.builds(
        lambda name, n: json.dumps({"name": name, "arguments": {"expression": "1+" * n + "1"}}),
        st.sampled_from(["calculate", "find_user_id_by_email", "think"]),
        st.integers(1_000, 20_000),
    ),
    st.builds(lambda n: json.dumps({"name": "x" * n, "arguments": {}}), st.integers(1_000, 100_000)),
)

actions = st.one_of(
    st.text(max_size=200),
    st.text(max_size=200).map(lambda s: "{" + s),
    broken_json(),
    json_non_objects,
    any_call.map(json.dumps),
    any_call,
    odd_dict,
    odd_dict.map(json.dumps),
    openai_message,
    openai_message.map(json.dumps),
    huge_strings,
    st.just(f"ok {STOP}"),
    st.just("Is there anything else I can help you with?"),
    json_scalars,  # not even a string
)


# --- the env never raises ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env(anchors: Path) -> gym.Env:
    return gym.make(ENV_ID, data_dir=anchors / "retail", max_steps=6)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(seed=st.integers(0, 2**16), batch=st.lists(actions, min_size=1, max_size=8))
def test_step_never_raises(env: gym.Env, seed: int, batch: list[Any]) -> None:
    env.reset(seed=seed)
    for action in batch:
        observation, reward, terminated, truncated, info = env.step(action)
        assert isinstance(observation, str)
        assert isinstance(reward, float)
        assert isinstance(terminated, bool) and isinstance(truncated, bool)
        assert isinstance(info, dict) and info["task_id"] == env.unwrapped.task.id
        messages = env.unwrapped.messages
        assert messages[0]["role"] == "system"
        json.dumps(messages)  # the conversation stays JSON
        if terminated or truncated:
            reward_info = info["reward_info"]
            assert reward == reward_info["reward"]
            assert 0.0 <= reward <= 1.0
            with pytest.raises(gym.error.ResetNeeded):
                env.step("hello?")
            env.reset(seed=seed)
        else:
            assert reward == 0.0 and "reward_info" not in info


def test_deeply_nested_json_action_is_an_error_observation(anchors: Path) -> None:
    """``json.loads`` raises RecursionError (not JSONDecodeError) on deep nesting: still an action."""
    env = gym.make(ENV_ID, data_dir=anchors / "retail")
    env.reset(seed=0)
    for action in (
        '{"name": "calculate", "arguments": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "{" + '"a":{' * 100_000 + "}" * 100_001,
        # the same inside an OpenAI tool call's arguments string
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "function": {"name": "think", "arguments": "[" * 100_000}}],
        },
    ):
        observation, reward, terminated, truncated, _ = env.step(action)
        assert observation.startswith("Error: ")
        assert (reward, terminated, truncated) == (0.0, False, False)
    env.step("hello")  # the episode goes on


@pytest.mark.parametrize(
    "value", [b"1 + 1", {1, 2}, object(), 1 + 2j], ids=["bytes", "set", "object", "complex"]
)
def test_non_json_argument_values_are_an_error_observation(anchors: Path, value: Any) -> None:
    """A dict action is a convenience for Python agents: values JSON can't carry must not crash step."""
    env = gym.make(ENV_ID, data_dir=anchors / "retail")
    env.reset(seed=0)
    observation, reward, terminated, truncated, _ = env.step(
        {"name": "calculate", "arguments": {"expression": value}}
    )
    assert isinstance(observation, str) and observation.startswith("Error: ")
    assert (reward, terminated, truncated) == (0.0, False, False)
    json.dumps(env.unwrapped.messages)


# --- the calculator ---------------------------------------------------------------------------------


def tau_bench_calculate(expression: str) -> str:
    """τ-bench v1's calculate, the reference semantics."""
    if not all(char in "0123456789+-*/(). " for char in expression):
        return "Error: invalid characters in expression"
    try:
        return str(round(float(eval(expression, {"__builtins__": None}, {})), 2))  # noqa: S307
    except Exception as exc:  # noqa: BLE001
        return f"Error: {exc}"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.one_of(st.text(max_size=60), st.text(alphabet=sorted(ALLOWED), max_size=60)))
def test_calculate_never_raises(expression: str) -> None:
    result = calculate(expression)
    assert isinstance(result, str)
    if not set(expression) <= ALLOWED:
        assert result == "Error: invalid characters in expression"


@pytest.mark.parametrize(
    "expression",
    [
        "-" * 100_000 + "1",
        "1+" * 100_000 + "1",
        "1" + "*1" * 50_000,
        "(" * 199 + "1" + ")" * 199,
        "9" * 5_000,
    ],
    ids=["many-minus", "long-sum", "long-product", "deep-parens", "long-literal"],
)
def test_calculate_never_raises_on_deep_expressions(expression: str) -> None:
    result = calculate(expression)
    assert isinstance(result, str)


def test_calculate_is_not_a_denial_of_service() -> None:
    """A 20-character expression must not keep the interpreter busy (nested powers grow without bound)."""
    code = "from apigen_gym.kit.arithmetic import calculate; print(calculate('((9**999)**999)**99'))"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=4)
    except subprocess.TimeoutExpired:
        pytest.fail("calculate('((9**999)**999)**99') took more than 4 s")
    assert done.stdout.startswith("Error: "), done.stderr[-1000:]


number = st.one_of(
    st.integers(0, 10**6).map(str),
    st.builds(lambda a, b: f"{a}.{b}", st.integers(0, 9999), st.integers(0, 999)),
    st.builds(lambda b: f".{b}", st.integers(0, 99)),
)
space = st.sampled_from(["", "", " ", "  "])


def _binary(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda a, s1, op, s2, b, parens: f"({a}{s1}{op}{s2}{b})" if parens else f"{a}{s1}{op}{s2}{b}",
        inner,
        space,
        st.sampled_from(["+", "-", "*", "/"]),
        space,
        inner,
        st.booleans(),
    )


simple_expressions = st.recursive(
    number,
    lambda inner: st.one_of(
        _binary(inner), st.builds(lambda e: f"-{e}", inner), st.builds(lambda e: f"({e})", inner)
    ),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(simple_expressions, space.filter(bool))
def test_calculate_agrees_with_eval(expression: str, trailing: str) -> None:
    for text in (expression, expression + trailing):
        assert calculate(text) == tau_bench_calculate(text)


@pytest.mark.parametrize("expression", [" 1 + 1", "  2 * (3 + 4)", " 10 / 4 "])
def test_calculate_accepts_leading_spaces_like_eval(expression: str) -> None:
    """τ-bench's ``eval`` strips leading spaces; ``compile`` reports 'unexpected indent' instead."""
    assert calculate(expression) == tau_bench_calculate(expression)
    assert not calculate(expression).startswith("Error")


def test_calculate_examples() -> None:
    assert calculate("2 * (3.5 + 4)") == "15.0"
    assert calculate("10 / 3") == "3.33"
    assert calculate("1 / 0") == tau_bench_calculate("1 / 0") == "Error: division by zero"
    assert calculate("1 + a") == "Error: invalid characters in expression"
    assert calculate("__import__('os')") == "Error: invalid characters in expression"
    assert calculate("").startswith("Error: ")
    assert calculate("()").startswith("Error: ")
    assert calculate("2 ** 10000").startswith("Error: ")


ARGUMENTS = [
    {},
    {"order_id": 5},
    {"order_id": "#W1", "extra": True},
    {"user_id": None, "reason": "no longer needed"},
    {"payment_methods": [{"payment_id": 1}], "flights": "x", "passengers": [{}]},
    {"amount": "12"},
    {"amount": True},
    {"item_ids": ["1", 2], "new_item_ids": "x"},
    {"thought": ["not", "text"]},
]


def test_compiled_field_validation_is_the_models() -> None:
    """Each tool validates through its model's field schema without building a model: the same
    accepted values and the same rejections, message for message, for every tool of every domain."""
    import pydantic

    from apigen_gym.core.domain import DOMAIN_NAMES, load_domain
    from apigen_gym.core.tools import Tool, _summarise

    def outcome(tool: Tool, arguments: dict[str, Any], compiled: bool) -> Any:
        try:
            if compiled:
                return tool.validate_fields(arguments)[0]
            return tool.arguments.model_validate(arguments).__dict__
        except pydantic.ValidationError as exc:
            return _summarise(exc)

    for name in DOMAIN_NAMES:
        for tool in load_domain(name).tools:
            samples = [*ARGUMENTS, *_valid_arguments(name, tool.name)]
            for arguments in samples:
                expected = outcome(tool, arguments, compiled=False)
                assert outcome(tool, arguments, compiled=True) == expected, (tool.name, arguments)


def _valid_arguments(domain: str, tool: str) -> list[dict[str, Any]]:
    """Arguments of ``tool`` in the shipped tasks (a few): validation must accept them alike."""
    from apigen_gym.core.domain import load_domain

    return [a.arguments for t in load_domain(domain).tasks("test") for a in t.actions if a.name == tool][:3]
