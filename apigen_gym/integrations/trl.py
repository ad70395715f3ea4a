"""TRL: ``GRPOTrainer(environment_factory=...)`` classes for any env, and the dataset they train on.

TRL's contract (trl >= 1.16): the factory takes no argument; ``reset(**row)`` receives every dataset
column and its string is appended to the prompt's last message; every public method is a tool whose
schema TRL reads from the type hints and the Google-style docstring; ``get_reward()`` is called once
per rollout. The rollout ends at the first assistant turn without a tool call, so the class has a
``respond`` tool that says something to the customer and returns the reply; a final message without
a tool call never reaches the env (say required outputs through ``respond``).

    from trl import GRPOConfig, GRPOTrainer
    from apigen_gym.integrations.trl import environment_class, task_dataset

    trainer = GRPOTrainer(model=..., args=GRPOConfig(...), train_dataset=task_dataset("apigen/retail-v0",
        split="train"), environment_factory=environment_class("apigen/retail-v0", split="train"))

Nothing here imports TRL: the class is plain Python; ``task_dataset`` imports ``datasets``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Optional

from apigen_gym.core.domain import DataError, load_domain
from apigen_gym.core.env import ApigenEnv
from apigen_gym.core.registration import ENV_IDS
from apigen_gym.core.reward import RewardInfo
from apigen_gym.core.task import Task
from apigen_gym.core.tools import ERROR_PREFIX
from apigen_gym.core.user import STOP
from apigen_gym.generation.phase2 import accepted_tasks
from apigen_gym.generation.store import RunPaths

if TYPE_CHECKING:
    from datasets import Dataset

RESPOND = "respond"
RESERVED = {"reset", "get_reward", RESPOND}
ENDED = f"{ERROR_PREFIX}the conversation has ended"
_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "object": dict,
}


# --- tool schemas as Python signatures ------------------------------------------------------------


def type_hint(schema: dict[str, Any]) -> Any:
    """The Python type whose JSON schema (as ``transformers.utils.get_json_schema`` derives it) matches
    ``schema``: scalars, enums as ``Literal``, arrays as ``list[...]``, objects as ``dict``, nullable
    ``anyOf`` as ``Optional``."""
    options = schema.get("anyOf")
    if options:
        kinds = [o for o in options if o.get("type") != "null"]
        inner = type_hint(kinds[0]) if len(kinds) == 1 else Any
        return Optional[inner] if len(kinds) < len(options) else inner  # noqa: UP045 - a runtime object
    if "enum" in schema:
        return Literal[tuple(schema["enum"])]
    if schema.get("type") == "array":
        return list[type_hint(schema["items"])] if "items" in schema else list  # type: ignore[misc]
    return _JSON_TYPES.get(schema.get("type", ""), Any)


def _nested_fields(schema: dict[str, Any]) -> str:
    """What a ``dict`` hint cannot say: the fields of an object parameter (or of an array's items)."""
    target = schema.get("items", schema) if schema.get("type") == "array" else schema
    if target.get("type") != "object" or "properties" not in target:
        return ""
    fields = {
        name: {k: v for k, v in field.items() if k in ("type", "enum", "description")}
        for name, field in target["properties"].items()
    }
    label = "Each item" if target is not schema else "Fields"
    return f" {label}: {json.dumps(fields)}"


def tool_method(schema: dict[str, Any]) -> Callable[..., str]:
    """A method ``name(self, **arguments) -> str`` calling the env's tool, whose signature and Google-style
    docstring carry the schema's parameters, types, defaults and descriptions."""
    function = schema["function"]
    name = function["name"]
    parameters = function.get("parameters", {})
    required = set(parameters.get("required", []))
    signature = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    lines = []
    for param, spec in parameters.get("properties", {}).items():
        hint = annotations[param] = type_hint(spec)
        default = inspect.Parameter.empty if param in required else spec.get("default")
        signature.append(
            inspect.Parameter(param, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint)
        )
        description = " ".join(str(spec.get("description") or param).split()) + _nested_fields(spec)
        lines.append(f"    {param}: {description}")
    annotations["return"] = str

    def method(self: TRLEnvironment, **arguments: Any) -> str:
        return self._act({"name": name, "arguments": arguments})

    method.__name__ = method.__qualname__ = name
    method.__signature__ = inspect.Signature(signature, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    args = "\n\nArgs:\n" + "\n".join(lines) if lines else ""
    method.__doc__ = f"{function.get('description') or name}{args}\n\nReturns:\n    The tool's output."
    return method


# --- the environment class --------------------------------------------------------------------------


class TRLEnvironment:
    """One rollout's env: reset from a dataset row, the domain's tools and ``respond`` as methods."""

    env_id: ClassVar[str]
    _make_env: ClassVar[Callable[[], ApigenEnv]]

    def __init__(self) -> None:
        self.env = type(self)._make_env()
        self.reward_info: RewardInfo | None = None
        self.done = True

    def reset(self, **row: Any) -> str | None:
        """Start the row's task (its ``task_id`` column); the user's first message is returned."""
        task_id = row.get("task_id")
        if task_id is None:
            raise DataError("the dataset has no task_id column: build it with task_dataset()")
        seed = row.get("seed")
        observation, _ = self.env.reset(seed=seed, options={"task_id": str(task_id)})
        self.reward_info, self.done = None, False
        return observation

    def respond(self, message: str) -> str:
        """Send a message to the customer and return the customer's reply.

        Args:
            message: what to tell or ask the customer.

        Returns:
            The customer's reply.
        """
        return self._act(message)

    def get_reward(self) -> float:
        """The env's reward for the episode, ending it first (the agent stops) if it is still open."""
        if not self.done:
            self._act(STOP)
        if self.reward_info is None:
            raise RuntimeError("get_reward() before reset()")
        return self.reward_info.reward

    def _act(self, action: Any) -> str:
        if self.done:
            return ENDED
        observation, _, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            self.done = True
            self.reward_info = RewardInfo.model_validate(info["reward_info"])
        return observation


def _class_name(env_id: str) -> str:
    short = env_id.split(":", 1)[-1].split("/")[-1]
    return "".join(part.capitalize() for part in short.replace("-", "_").split("_")) + "Environment"


def _source(
    env_id: str, split: str, run: str | Path | None, tasks: list[Task] | None
) -> tuple[str, dict[str, Any]]:
    """The env's domain and the ``ApigenEnv`` arguments that select the tasks."""
    domain = ENV_IDS.get(env_id.split(":", 1)[-1])
    if domain is None:
        raise DataError(f"unknown env {env_id!r} (known: {', '.join(ENV_IDS)})")
    if run is not None and tasks is not None:
        raise TypeError("pass tasks or run, not both")
    if run is not None:
        paths = RunPaths(run)
        if not paths.accepted.is_file():
            raise DataError(f"{paths.accepted}: no accepted tasks (run `apigen-gym generate` first)")
        config = json.loads(paths.config.read_text()) if paths.config.is_file() else {}
        if config.get("domain", domain) != domain:
            raise DataError(f"the run {run} generated {config['domain']} tasks, not {domain}")
        tasks = accepted_tasks(paths)
    return domain, ({"tasks": tasks} if tasks is not None else {"split": split})


def environment_class(
    env_id: str,
    *,
    split: str = "train",
    run: str | Path | None = None,
    tasks: list[Task] | None = None,
    **env_kwargs: Any,
) -> type[TRLEnvironment]:
    """A TRL ``environment_factory`` class for ``env_id``: one method per domain tool plus ``respond``.

    The tasks come from ``split``, a generation ``run`` folder (its accepted tasks) or explicit
    ``tasks``: the same source as the :func:`task_dataset` it trains on. ``env_kwargs`` go to the env
    (``reward_mode="partial"``, ``max_steps``, ``user``, ...). TRL logs the reward as
    ``rewards/<ClassName>/mean``, e.g. ``RetailV0Environment``.
    """
    domain, source = _source(env_id, split, run, tasks)
    loaded = load_domain(domain)
    clash = RESERVED & set(loaded.tools.names)
    if clash:
        raise DataError(f"{domain} has tools named like the class's own methods: {sorted(clash)}")
    namespace: dict[str, Any] = {t["function"]["name"]: tool_method(t) for t in loaded.tools.schemas}
    namespace.update(
        env_id=env_id,
        _make_env=staticmethod(lambda: ApigenEnv(loaded, **source, **env_kwargs)),
        __doc__=f"{env_id} for TRL's GRPOTrainer: {len(loaded.tools)} tools and respond.",
        __module__=__name__,
    )
    return type(_class_name(env_id), (TRLEnvironment,), namespace)


def task_dataset(
    env_id: str,
    *,
    split: str = "train",
    run: str | Path | None = None,
    tasks: list[Task] | None = None,
    system_prompt: bool = True,
) -> Dataset:
    """One row per task: ``prompt`` (the policy as the system message, then an empty user message that
    ``reset`` completes with the customer's first words), ``task_id`` and ``env_id``. GRPO's G rollouts
    of a row share its task."""
    from datasets import Dataset

    domain, source = _source(env_id, split, run, tasks)
    loaded = load_domain(domain)
    chosen = source["tasks"] if "tasks" in source else loaded.tasks(source["split"])
    if not chosen:
        raise DataError(f"no tasks for {env_id} ({source.get('split', 'given tasks')})")
    system = [{"role": "system", "content": loaded.policy.text}] if system_prompt else []
    prompt = [*system, {"role": "user", "content": ""}]
    return Dataset.from_dict(
        {
            "prompt": [prompt] * len(chosen),
            "task_id": [t.id for t in chosen],
            "env_id": [env_id] * len(chosen),
        }
    )
