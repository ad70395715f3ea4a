"""TRL: the environment classes seen through TRL's and transformers' own code, played to reward 1, and
TRL's own GRPOTrainer taking an optimisation step on CPU with a tiny model whose rewards come from the env.
"""

from __future__ import annotations

import inspect
import math
from pathlib import Path
from typing import Any

import pytest
from hf_tiny import tiny_model, tiny_tokenizer

from apigen_gym.core.domain import DataError, load_domain
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.reward import GOLD
from apigen_gym.integrations.trl import ENDED, environment_class, task_dataset
from apigen_gym.players.oracle import OracleScript, Say

DOMAINS = ["retail", "airline", "travel"]


def _strip(schema: dict[str, Any]) -> Any:
    """A JSON schema reduced to what both sides can say: types (nullable folded in), enums, items."""
    if "anyOf" in schema:
        kinds = [_strip(o) for o in schema["anyOf"] if o.get("type") != "null"]
        return {**kinds[0], "nullable": True} if len(kinds) == 1 else kinds
    out: dict[str, Any] = {k: schema[k] for k in ("type", "enum") if k in schema}
    if schema.get("nullable"):
        out["nullable"] = True
    if schema.get("type") == "array" and "items" in schema:
        out["items"] = (
            _strip(schema["items"]) if schema["items"].get("type") != "object" else {"type": "object"}
        )
    return out


@pytest.mark.parametrize("domain", DOMAINS)
def test_trl_sees_the_domain_tools_with_their_parameters_and_descriptions(domain: str) -> None:
    from transformers.utils import get_json_schema

    Env = environment_class(f"apigen/{domain}-v0", split="test")
    env = Env()
    tools = load_domain(domain).tools
    public = {name for name, _ in inspect.getmembers(Env, inspect.isfunction) if not name.startswith("_")}
    assert public == {*tools.names, "respond", "reset", "get_reward"}  # what TRL turns into tools (+ its two)
    for schema in tools.schemas:
        expected = schema["function"]
        seen = get_json_schema(getattr(env, expected["name"]))["function"]
        assert seen["name"] == expected["name"] and seen["description"] == expected["description"]
        want, got = expected["parameters"], seen["parameters"]
        assert list(got["properties"]) == list(want["properties"])
        assert sorted(got.get("required", [])) == sorted(want["required"])
        for name, spec in want["properties"].items():
            assert got["properties"][name]["description"].startswith(" ".join(spec["description"].split()))
            assert _strip(got["properties"][name]) == _strip(spec), (expected["name"], name)
    respond = get_json_schema(env.respond)["function"]
    assert respond["parameters"]["required"] == ["message"] and respond["parameters"]["properties"]["message"]


def test_nested_objects_keep_their_fields_in_the_description() -> None:
    from transformers.utils import get_json_schema

    env = environment_class("apigen/airline-v0", split="test")()
    passengers = get_json_schema(env.book_reservation)["function"]["parameters"]["properties"]["passengers"]
    assert passengers["type"] == "array" and passengers["items"] == {"type": "object"}
    assert '"first_name"' in passengers["description"] and '"dob"' in passengers["description"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_class_played_through_gold_actions_and_the_user_tool_gets_reward_1(domain: str) -> None:
    env_id = f"apigen/{domain}-v0"
    Env = environment_class(env_id, split="test")
    dataset = task_dataset(env_id, split="test")
    tools = load_domain(domain).tools
    env = Env()
    checked = 0
    for row in dataset.select(range(0, len(dataset), max(1, len(dataset) // 6))):
        first = env.reset(**row)
        assert first and first == env.env.messages[1]["content"]
        task = env.env.task
        assert task.id == row["task_id"] and row["prompt"][0]["content"] == load_domain(domain).policy.text
        script, reply = OracleScript(task, tools), None
        while (move := script.next(reply)) is not None:
            if isinstance(move, Say):
                reply = env.respond(move.text)
            else:
                reply = getattr(env, move.name)(**move.arguments)
            assert reply and not reply.startswith("Error: unknown tool"), (move, reply)
        reward = env.get_reward()
        assert reward == 1.0 and env.reward_info is not None and not env.reward_info.violations, task.id
        assert env.respond("Anything else?") == ENDED and env.get_reward() == 1.0
        checked += 1
    assert checked >= 6


def test_get_reward_ends_an_open_episode_and_a_bad_call_is_an_observation() -> None:
    env = environment_class("apigen/retail-v0", split="test")()
    env.reset(task_id="retail-test-003", prompt=[])
    assert env.find_user_id_by_email(email=42).startswith("Error: invalid arguments")
    assert env.get_order_details().startswith("Error: invalid arguments")
    assert env.get_reward() == 0.0 and env.env.termination == "agent_stop"
    nothing = next(t for t in env.env.tasks if not GOLD.diff(env.env.domain.tools, env.env.database, t)
                   and not t.outputs)  # fmt: skip
    env.reset(task_id=nothing.id)
    assert env.get_reward() == 1.0  # nothing to do: ending at once is right
    with pytest.raises(DataError, match="task_id"):
        env.reset(prompt=[])


def test_datasets_from_a_split_and_from_a_generation_run(tmp_path: Path) -> None:
    from apigen_gym.cli import main

    train = task_dataset("apigen/retail-v0")
    assert len(train) == 300 and set(train.column_names) == {"prompt", "task_id", "env_id"}
    assert main(["generate", "--domain", "airline", "-n", "4", "--phase", "1", "--out", str(tmp_path)]) == 0
    generated = task_dataset("apigen/airline-v0", run=tmp_path, system_prompt=False)
    Env = environment_class("apigen/airline-v0", run=tmp_path)
    assert len(generated) >= 4 and generated[0]["prompt"] == [{"role": "user", "content": ""}]
    env = Env()
    for row in generated:
        assert env.reset(**row) and env.env.task.id == row["task_id"]
    with pytest.raises(DataError, match="airline tasks, not retail"):
        task_dataset("apigen/retail-v0", run=tmp_path)
    with pytest.raises(DataError, match="unknown env"):
        environment_class("apigen/bank-v0")
    with pytest.raises(DataError, match="no accepted tasks"):
        task_dataset("apigen/retail-v0", run=tmp_path / "nowhere")


def test_grpo_trainer_takes_a_step_on_cpu_with_rewards_from_the_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TRL's own GRPOTrainer, a tiny random model: 2 tasks × 2 rollouts, one optimisation step.

    One task needs nothing (the env gives 1 when the rollout ends), the other needs writes (0): the
    reward TRL logs for the env class must be the mean of what the env instances returned.
    """
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl import GRPOConfig, GRPOTrainer

    env = ApigenEnv("retail")
    nothing = next(t for t in env.tasks if not GOLD.diff(env.domain.tools, env.database, t) and not t.outputs)
    writes = next(t for t in env.tasks if GOLD.diff(env.domain.tools, env.database, t))
    dataset = task_dataset("apigen/retail-v0", split="test").filter(
        lambda r: r["task_id"] in {nothing.id, writes.id}
    )
    Env = environment_class("apigen/retail-v0", split="test")
    made: list[Any] = []

    def factory() -> Any:
        made.append(Env())
        return made[-1]

    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer)
    args = GRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        max_steps=1,
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=8,
        learning_rate=1e-2,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        shuffle_dataset=False,
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, environment_factory=factory
    )
    trainer.train()
    assert trainer.state.global_step == 1
    name = Env.__name__
    logged = next(entry for entry in trainer.state.log_history if f"rewards/{name}/mean" in entry)
    returned = [e.reward_info.reward for e in made if e.reward_info is not None]
    assert sorted(returned) == [0.0, 0.0, 1.0, 1.0]  # every rollout scored by its env, two per task
    assert logged[f"rewards/{name}/mean"] == pytest.approx(sum(returned) / len(returned))
    assert logged["reward"] == pytest.approx(0.5) and math.isfinite(logged["loss"])
    by_task = {e.env.task.id: e.reward_info.reward for e in made if e.reward_info is not None}
    assert by_task == {nothing.id: 1.0, writes.id: 0.0}
