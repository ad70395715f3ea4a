"""The partial reward on hand-built episodes (exact values), and through the env; binary stays as it was."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import apigen_gym  # noqa: F401 - registers the envs
from apigen_gym.core.database import Database, Diff
from apigen_gym.core.policy import Violation
from apigen_gym.core.reward import differing_records, score, state_credit
from apigen_gym.players.oracle import OracleAgent

BASE = Database(
    {
        "orders": {
            "o1": {"status": "pending", "items": [1, 2]},
            "o2": {"status": "pending", "items": [3]},
        },
        "users": {"u1": {"name": "Ann", "zip": "10001"}, "u2": {"name": "Bob", "zip": "20002"}},
    }
)
# The gold replay cancels o1 (one field) and moves u1 (one field); the agent must also say two outputs.
GOLD: Diff = {
    "orders": {"o1": {"status": "cancelled", "items": [1, 2]}},
    "users": {"u1": {"name": "Ann", "zip": "10002"}},
}
OUTPUTS = ["cancelled", "10002"]
SAID_ALL = ["Your order is cancelled and your zip is now 10002."]
VIOLATION = Violation(rule="confirm_before_write", step=0, message="no explicit yes")


def partial(
    diff: Diff,
    said: list[str],
    violations: list[Violation] | None = None,
    gold: Diff = GOLD,
    outputs: list[str] = OUTPUTS,
) -> Any:
    return score(diff, gold, said, outputs, violations or [], reward_mode="partial", base=BASE)


def test_everything_done_is_one_in_both_modes() -> None:
    info = partial(GOLD, SAID_ALL)
    assert info.reward == 1.0 and info.reward_mode == "partial"
    assert (info.partial.units, info.partial.reached, info.partial.extra_writes) == (4, 4, 0)
    assert score(GOLD, GOLD, SAID_ALL, OUTPUTS).reward == 1.0


def test_half_the_writes() -> None:
    half = {"orders": {"o1": {"status": "cancelled", "items": [1, 2]}}}
    assert partial(half, SAID_ALL).reward == 0.75  # 1 of 2 fields + 2 of 2 outputs
    assert partial(half, []).reward == 0.25  # 1 of 4 units
    assert score(half, GOLD, SAID_ALL, OUTPUTS).reward == 0.0  # binary unchanged


def test_a_wrong_extra_write_costs_one_unit() -> None:
    extra = {**GOLD, "users": {**GOLD["users"], "u2": {"name": "Robert", "zip": "20002"}}}
    info = partial(extra, SAID_ALL)
    assert info.reward == 0.75 and info.partial.extra_writes == 1
    assert score(extra, GOLD, SAID_ALL, OUTPUTS).reward == 0.0


def test_a_field_written_with_the_wrong_value_is_missed_not_extra() -> None:
    wrong = {**GOLD, "orders": {"o1": {"status": "returned", "items": [1, 2]}}}
    info = partial(wrong, SAID_ALL)
    assert info.reward == 0.75 and (info.partial.reached, info.partial.extra_writes) == (3, 0)


def test_a_field_gold_kept_but_the_agent_changed_on_a_gold_record_is_extra() -> None:
    both = {**GOLD, "orders": {"o1": {"status": "cancelled", "items": [1]}}}
    assert partial(both, SAID_ALL).reward == 0.75


def test_a_violation_costs_one_unit() -> None:
    info = partial(GOLD, SAID_ALL, [VIOLATION])
    assert info.reward == 0.75 and info.partial.violations == 1
    assert score(GOLD, GOLD, SAID_ALL, OUTPUTS, [VIOLATION]).reward == 1.0  # binary: reported only


def test_created_and_deleted_records() -> None:
    gold = {
        "orders": {"o2": None, "o3": {"status": "pending", "items": [4]}}
    }  # delete o2, create o3 (2 fields)
    assert partial(gold, [], gold=gold, outputs=[]).reward == 1.0
    only_created = {"orders": {"o3": {"status": "pending", "items": [4]}}}
    assert partial(only_created, [], gold=gold, outputs=[]).reward == pytest.approx(2 / 3)
    stray = {**gold, "users": {"u9": {"name": "Eve", "zip": "1"}}, "orders": {**gold["orders"], "o1": None}}
    info = partial(stray, [], gold=gold, outputs=[])
    assert info.partial.extra_writes == 2 and info.reward == pytest.approx(1 / 3)


def test_a_task_with_nothing_to_do() -> None:
    assert partial({}, [], gold={}, outputs=[]).reward == 1.0
    assert partial({"users": {"u2": {"name": "Bob", "zip": "1"}}}, [], gold={}, outputs=[]).reward == 0.0
    assert partial({}, [], [VIOLATION], gold={}, outputs=[]).reward == 0.0


def test_the_reward_is_floored_at_zero_and_the_penalty_still_applies() -> None:
    chaos = {"users": {"u1": {"name": "X", "zip": "0"}, "u2": {"name": "Y", "zip": "0"}}}
    assert partial(chaos, []).reward == 0.0
    info = score(
        GOLD, GOLD, SAID_ALL, OUTPUTS, [VIOLATION], violation_penalty=0.5, reward_mode="partial", base=BASE
    )
    assert info.reward == 0.25  # 3/4, then 0.5 per violation


_MISSING = object()


def _by_unit(diff: Diff, gold: Diff) -> tuple[int, int, int]:
    """(units, reached, extra writes) counted one unit at a time, from the definition."""

    def final(state: Diff, table: str, key: str) -> Any:
        return state[table][key] if key in state.get(table, {}) else BASE.table(table).get(key)

    def field(record: Any, name: str) -> Any:
        return _MISSING if record is None else record.get(name, _MISSING)

    def changed(before: Any, after: Any) -> set[str]:
        names = set(before or ()) | set(after or ())
        return {name for name in names if field(before, name) != field(after, name)}

    units = reached = extra = 0
    for table, records in gold.items():
        for key, record in records.items():
            mine, before = final(diff, table, key), BASE.table(table).get(key)
            if record is None:  # a deletion is one unit
                units, reached = units + 1, reached + (mine is None)
                continue
            for name in changed(before, record):
                units, reached = units + 1, reached + (field(mine, name) == field(record, name))
    for table, records in diff.items():
        for key, mine in records.items():
            before, wanted = BASE.table(table).get(key), final(gold, table, key)
            if wanted is None and key in gold.get(table, {}):  # gold deletes it: the deletion is all
                continue
            if (mine is None) != (before is None):  # created or deleted: one write
                extra += wanted == before
            elif mine is not None:
                extra += sum(field(wanted, name) == field(before, name) for name in changed(before, mine))
    return units, reached, extra


_RECORDS = {**{("orders", k): r for k, r in BASE.table("orders").items()}, ("orders", "o3"): None}
_RECORDS |= {("users", k): r for k, r in BASE.table("users").items()}
_VALUES = st.sampled_from(["pending", "cancelled", "Ann", "Bob", "10001", "10002", 7, None])


@st.composite
def _diffs(draw: st.DrawFn) -> Diff:
    """A diff of BASE: records changed field by field, deleted, or created."""
    diff: Diff = {}
    for (table, key), record in _RECORDS.items():
        kind = draw(st.sampled_from(["same", "same", "change", "delete"]))
        if kind == "same" or (kind == "delete" and record is None):
            continue
        after = None
        if kind == "change":
            after = dict(record or {})
            for name in draw(st.lists(st.sampled_from(["status", "name", "zip", "note"]), max_size=3)):
                after[name] = draw(_VALUES)
            for name in draw(st.lists(st.sampled_from(list(after) or ["x"]), max_size=1)):
                after.pop(name, None)
        if after != record:
            diff.setdefault(table, {})[key] = after
    return diff


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_diffs(), _diffs())
def test_partial_credit_counts_each_unit_by_its_definition(diff: Diff, gold: Diff) -> None:
    credit = state_credit(diff, gold, BASE)
    assert (credit.units, credit.reached, credit.extra_writes) == _by_unit(diff, gold)
    assert credit.differing == differing_records(diff, gold)  # the binary reward's pass


def test_the_partial_reward_needs_the_base_and_a_known_mode() -> None:
    with pytest.raises(ValueError, match="base state"):
        score(GOLD, GOLD, SAID_ALL, OUTPUTS, reward_mode="partial")
    with pytest.raises(ValueError, match="reward_mode"):
        score(GOLD, GOLD, SAID_ALL, OUTPUTS, reward_mode="shaped")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reward_mode"):
        gym.make("apigen/retail-v0", reward_mode="shaped")


def test_through_the_env_the_oracle_gets_one_and_a_silent_agent_less() -> None:
    from apigen_gym.evaluation.runner import run_episode

    for env_id in ("apigen/retail-v0", "apigen/airline-v0"):
        env = gym.make(env_id, reward_mode="partial").unwrapped
        for task in env.tasks[:8]:
            result = run_episode(env, OracleAgent(env.domain.tools), task.id)
            info = result.reward_info
            assert result.reward == 1.0 and info["reward_mode"] == "partial", (task.id, info)
            assert info["partial"]["reached"] == info["partial"]["units"]
            env.reset(options={"task_id": task.id})
            _, reward, _, _, step_info = env.step("Goodbye! ###STOP###")
            silent = step_info["reward_info"]["partial"]
            needs_action = bool(info["gold_changes"] or task.outputs)
            assert silent["reached"] == (0 if needs_action else silent["units"])
            assert reward == (0.0 if needs_action else 1.0)


def _written(env: Any, task_id: str) -> list[int]:
    from apigen_gym.core.reward import GOLD

    task = next(t for t in env.tasks if t.id == task_id)
    return [len(records) for records in GOLD.diff(env.domain.tools, env.database, task).values()]


def test_the_default_stays_binary() -> None:
    from apigen_gym.evaluation.runner import run_episode

    env = gym.make("apigen/retail-v0").unwrapped
    result = run_episode(env, OracleAgent(env.domain.tools), env.tasks[0].id)
    info = result.reward_info
    assert (result.reward, info["reward_mode"], info["partial"]) == (1.0, "binary", None)
    assert info["gold_changes"] == sum(_written(env, env.tasks[0].id))
