"""The Gymnasium environment: a customer-service conversation as a POMDP.

Hidden state: the database (a copy-on-write fork) and the user's goal. The agent acts with tool calls
or messages to the user; it observes tool outputs and user replies. The reward is given at the end of
the episode and explained in ``info["reward_info"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any, NamedTuple, SupportsFloat, TypeVar

import gymnasium as gym

from apigen_gym.core.actions import AgentTurn, parse_action
from apigen_gym.core.database import Database, Diff, thaw
from apigen_gym.core.domain import DataError, Domain, load_domain
from apigen_gym.core.policy import Violation
from apigen_gym.core.reward import GOLD, REWARD_MODES, OutputMode, RewardInfo, RewardMode, score
from apigen_gym.core.session import Session
from apigen_gym.core.spaces import Text
from apigen_gym.core.task import Task
from apigen_gym.core.tools import ERROR_PREFIX
from apigen_gym.core.user import STOP, UserSimulator, make_user
from apigen_gym.util import jsonio

StepResult = tuple[str, SupportsFloat, bool, bool, dict[str, Any]]
_T = TypeVar("_T")

RESET_OPTIONS = ("task_id", "task_index", "split")
"""The keys ``reset(options=...)`` understands."""
_Saved = tuple[Any, Any, dict[str, Any] | None]
"""The RNG, its seed and the user simulator's attributes before a reset."""


class _Plan(NamedTuple):
    """The episode a reset is about to start."""

    split: str
    tasks: list[Task]
    task_index: Mapping[str, int]
    task: Task
    user_seed: int | None
    rng_state: Mapping[str, Any] | None
    """The RNG's state before a draw that no new seed came with (to put back if the reset fails)."""


def _reset_options(options: Any) -> Mapping[str, Any]:
    """``options`` of a reset, checked: a mapping of known keys (``None`` is no options)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"reset options must be a dict, not {type(options).__name__}")
    unknown = [key for key in options if key not in RESET_OPTIONS]
    if unknown:
        raise ValueError(
            f"unknown reset option {', '.join(map(repr, unknown))}: use {', '.join(RESET_OPTIONS)}"
        )
    return options


@dataclass
class _AgentMessage:
    """A message to the user, waiting for the user's reply (sync or async)."""

    text: str


class ApigenEnv(gym.Env[str, str]):
    """A domain's customer-service world as a Gymnasium environment.

    Args:
        domain: the domain name (``"retail"``) or a :class:`Domain`.
        data_dir: a τ-bench-layout folder (``db/*.json``, ``tasks/<split>.jsonl``); default: shipped data.
        database: an explicit base :class:`Database`, instead of the one in ``data_dir``.
        split: the task split to draw from.
        tasks: explicit tasks, instead of a split.
        user: ``"scripted"`` (offline, deterministic), ``"llm"`` (a model plays the customer) or a
            :class:`UserSimulator`.
        user_model, base_url: the model and server of the ``"llm"`` user (else ``OPENAI_*`` variables).
        user_best_of: with ``"llm"``, APIGen-MT's best-of-N user with a critic (N > 1).
        max_steps: agent actions before the episode is truncated.
        output_mode: ``"compat"`` (τ-bench substring rule) or ``"strict"``.
        violation_penalty: subtracted from the reward per policy violation (default 0: reported only).
        reward_mode: ``"binary"`` (τ-bench: 1 or 0) or ``"partial"`` (credit in [0, 1] for the share of
            the gold changes and outputs reached, minus writes gold never made and violations).
        render_mode: ``"ansi"`` or ``"human"``.
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": 1}

    def __init__(
        self,
        domain: str | Domain = "retail",
        *,
        data_dir: str | Path | None = None,
        database: Database | None = None,
        split: str = "test",
        tasks: list[Task] | None = None,
        user: str | UserSimulator = "scripted",
        user_model: str | None = None,
        base_url: str | None = None,
        user_best_of: int = 1,
        max_steps: int = 60,
        output_mode: OutputMode = "compat",
        violation_penalty: float = 0.0,
        render_mode: str | None = None,
        reward_mode: RewardMode = "binary",
    ):
        self.domain = load_domain(domain) if isinstance(domain, str) else domain
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']}, not {render_mode!r}"
            )
        if output_mode not in ("compat", "strict"):
            raise ValueError(f"output_mode must be 'compat' or 'strict', not {output_mode!r}")
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {REWARD_MODES}, not {reward_mode!r}")
        for name, value in (("max_steps", max_steps), ("user_best_of", user_best_of)):
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
        self.render_mode = render_mode
        self.data_dir = data_dir
        self.split = split
        self.database = database if database is not None else self.domain.database(data_dir)
        self.tasks: list[Task]
        self._task_index: Mapping[str, int]
        if tasks is None:
            self.tasks = self.domain.tasks(split, data_dir)
            self._task_index = self.domain.task_index(split, data_dir)
        else:
            self.tasks = list(tasks)
            self._task_index = {t.id: i for i, t in enumerate(self.tasks)}
        if not self.tasks:
            raise DataError(f"no tasks for {self.domain.name} (split {split!r})")
        self.user = make_user(user, user_model=user_model, base_url=base_url, user_best_of=user_best_of)
        self._owns_user = not isinstance(user, UserSimulator)
        """Whether the env made its user (from a name), and so closes it."""
        self.max_steps = int(max_steps)
        self.output_mode: OutputMode = output_mode
        self.violation_penalty = violation_penalty
        self.reward_mode: RewardMode = reward_mode
        self.observation_space = Text()
        self.action_space = Text()
        self.task: Task = self.tasks[0]
        self.messages: list[dict[str, Any]] = []
        self._session = Session(self.domain.tools, self.database, self.messages)
        self._steps = 0
        self._done = False
        self._rendered = 0
        self.termination: str | None = None
        self.reward_info: RewardInfo | None = None

    # --- what an agent needs --------------------------------------------------------------------

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The tools as OpenAI function schemas."""
        return self.domain.tools.schemas

    @property
    def policy(self) -> str:
        return self.domain.policy.text

    @property
    def steps_taken(self) -> int:
        """Agent actions so far in this episode."""
        return self._steps

    def state_diff(self) -> Diff:
        """The episode's changes: ``{table: {key: record or None}}`` (τ-bench ``final_diff`` format)."""
        return thaw(self._session.diff())  # type: ignore[no-any-return]

    # --- reset ----------------------------------------------------------------------------------

    def _plan(self, seed: int | None, given: dict[str, Any] | None) -> _Plan:
        """The next episode's split and task, and the user's seed; only the RNG changes (seeded as
        Gymnasium does), and only once the options are found good."""
        options = _reset_options(given)
        split, tasks, index = self.split, self.tasks, self._task_index
        if "split" in options and options["split"] != split:
            split = str(options["split"])
            tasks = self.domain.tasks(split, self.data_dir)
            if not tasks:
                raise DataError(f"no tasks for {self.domain.name} (split {split!r})")
            index = self.domain.task_index(split, self.data_dir)
        chosen: Task | None = None
        if options.get("task_id") is not None:
            task_id = str(options["task_id"])
            if task_id not in index:
                raise DataError(f"no task {task_id!r} in split {split!r}")
            chosen = tasks[index[task_id]]
        elif options.get("task_index") is not None:
            position = options["task_index"]
            if isinstance(position, bool) or not isinstance(position, Integral):
                raise TypeError(f"task_index must be an integer, not {position!r}")
            if not 0 <= int(position) < len(tasks):
                raise DataError(f"task_index {position} out of range: split {split!r} has {len(tasks)} tasks")
            chosen = tasks[int(position)]
        super().reset(seed=seed)
        rng_state: Mapping[str, Any] | None = None
        if chosen is None:
            if seed is None:
                rng_state = self.np_random.bit_generator.state
            chosen = tasks[int(self.np_random.integers(len(tasks)))]
        user_seed = int(self.np_random.integers(2**31)) if seed is not None else None
        return _Plan(split, tasks, index, chosen, user_seed, rng_state)

    def _start(self, plan: _Plan, first_message: str) -> tuple[str, dict[str, Any]]:
        """Begin the planned episode with the user's first message."""
        self.split, self.tasks, self._task_index, self.task = (
            plan.split,
            plan.tasks,
            plan.task_index,
            plan.task,
        )
        self.messages = [
            {"role": "system", "content": self.domain.policy.text},
            {"role": "user", "content": first_message},
        ]
        self._session = Session(self.domain.tools, self.database, self.messages)
        self._steps = 0
        self._done = False
        self._rendered = 0
        self.termination = None
        self.reward_info = None
        info = {"task_id": self.task.id, "split": self.split, "tools": self.tools, "policy": self.policy}
        return first_message, info

    def _saved(self) -> _Saved:
        """What a reset may change before it succeeds: the RNG and the user simulator."""
        user_state = dict(vars(self.user)) if hasattr(self.user, "__dict__") else None
        return self._np_random, self._np_random_seed, user_state

    def _restore(self, saved: _Saved, plan: _Plan | None) -> None:
        rng, rng_seed, user_state = saved
        self._np_random, self._np_random_seed = rng, rng_seed
        if plan is not None and plan.rng_state is not None and rng is not None:
            rng.bit_generator.state = plan.rng_state
        if user_state is not None:
            vars(self.user).clear()
            vars(self.user).update(user_state)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start an episode. ``options``: ``task_id``, ``task_index`` or ``split`` (which stays the
        env's split for later resets); any other key is an error. A reset that raises (a bad option,
        the user simulator's outage) leaves the env as it was: split, task, episode, RNG and user."""
        saved, plan = self._saved(), None
        try:
            plan = self._plan(seed, options)
            first_message = self.user.start(plan.task, plan.user_seed)
        except BaseException:
            self._restore(saved, plan)
            raise
        return self._shown(self._start(plan, first_message))

    async def reset_async(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """:meth:`reset` for an asynchronous user simulator."""
        saved, plan = self._saved(), None
        try:
            plan = self._plan(seed, options)
            first_message = await self.user.start_async(plan.task, plan.user_seed)
        except BaseException:
            self._restore(saved, plan)
            raise
        return self._shown(self._start(plan, first_message))

    # --- step -----------------------------------------------------------------------------------

    def step(self, action: Any) -> StepResult:
        outcome = self._act(action)
        if isinstance(outcome, _AgentMessage):
            outcome = self._after_user(self.user.respond(outcome.text))
        return self._shown(outcome)

    async def step_async(self, action: Any) -> StepResult:
        """:meth:`step` for an asynchronous user simulator."""
        outcome = self._act(action)
        if isinstance(outcome, _AgentMessage):
            outcome = self._after_user(await self.user.respond_async(outcome.text))
        return self._shown(outcome)

    def _shown(self, result: _T) -> _T:
        """In ``human`` mode, print what is new in the conversation (Gymnasium renders on each step)."""
        if self.render_mode == "human":
            self.render()
        return result

    def _act(self, action: Any) -> StepResult | _AgentMessage:
        """Apply the agent's action; a message to the user is returned for the user to answer."""
        if self._done:
            raise gym.error.ResetNeeded("the episode has ended: call reset()")
        self._steps += 1
        turn = parse_action(action)
        if turn.tool_calls:
            return self._run_tools(turn)
        text = turn.content or ""
        self.messages.append({"role": "assistant", "content": text})
        if STOP in text:
            return self._end("agent_stop", text)
        return _AgentMessage(text)

    def _run_tools(self, turn: AgentTurn) -> StepResult:
        messages, session, steps = self.messages, self._session, self._steps
        message_index = len(messages)
        requests: list[dict[str, Any]] = []  # filled call by call: the message holds them all at the end
        messages.append({"role": "assistant", "content": turn.content, "tool_calls": requests})
        outputs = []
        for i, call in enumerate(turn.tool_calls):
            request_id = call.id or f"call_{steps}_{i}"
            function = {"name": call.name, "arguments": call.arguments_json or jsonio.dumps(call.arguments)}
            requests.append({"id": request_id, "type": "function", "function": function})
            if session.transferred:
                output = f"{ERROR_PREFIX}not executed: the conversation was transferred"
            elif call.error is not None:
                output = f"{ERROR_PREFIX}{call.error}"
            else:
                output = session.call(call.name, call.arguments, message_index).output
            messages.append(
                {"role": "tool", "tool_call_id": request_id, "name": call.name, "content": output}
            )
            outputs.append(output)
        observation = outputs[0] if len(outputs) == 1 else "\n\n".join(outputs)
        if session.transferred:
            return self._end("transfer", observation)
        if self._steps >= self.max_steps:
            return self._end("max_steps", observation, truncated=True)
        return observation, 0.0, False, False, self._info()

    def _after_user(self, reply: str) -> StepResult:
        self.messages.append({"role": "user", "content": reply})
        if STOP in reply:
            return self._end("user_stop", reply)
        return self._maybe_truncate(reply)

    def _maybe_truncate(self, observation: str) -> StepResult:
        if self._steps >= self.max_steps:
            return self._end("max_steps", observation, truncated=True)
        return observation, 0.0, False, False, self._info()

    def _end(self, reason: str, observation: str, truncated: bool = False) -> StepResult:
        self._done = True
        self.termination = reason
        self.reward_info = self.compute_reward()
        info = self._info()
        info["reward_info"] = self.reward_info.model_dump()
        return observation, self.reward_info.reward, not truncated, truncated, info

    def _info(self) -> dict[str, Any]:
        return {"task_id": self.task.id, "steps": self._steps, "termination": self.termination}

    # --- reward ---------------------------------------------------------------------------------

    def violations(self) -> list[Violation]:
        """Policy violations of the episode so far."""
        return self.domain.policy.check(self._session.trace)

    def compute_reward(self) -> RewardInfo:
        """Score the current state against the task's gold replay (cached per task)."""
        gold = GOLD.entry(self.domain.tools, self.database, self.task)
        said = [str(m["content"]) for m in self.messages if m["role"] == "assistant" and m.get("content")]
        return score(
            self._session.diff(),
            gold.diff,
            said,
            self.task.outputs,
            self.violations(),
            self.output_mode,
            self.violation_penalty,
            self.reward_mode,
            self.database,
            gold.units(self.database) if self.reward_mode == "partial" else None,
        )

    # --- close ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Release what the env made: the user simulator it built from a name (an LLM user's
        connections). A simulator passed in is the caller's to close."""
        if self._owns_user:
            self.user.close()
        super().close()

    async def close_async(self) -> None:
        """:meth:`close` from a coroutine (the user's connections of this event loop closed here)."""
        if self._owns_user:
            await self.user.close_async()
        super().close()

    # --- render ---------------------------------------------------------------------------------

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return format_transcript(self.messages)
        if self.render_mode == "human":
            print(format_transcript(self.messages[self._rendered :]), end="")
            self._rendered = len(self.messages)
        return None


def format_transcript(messages: list[dict[str, Any]]) -> str:
    """A plain-text transcript, one block per message (the system prompt is abbreviated)."""
    lines = []
    for m in messages:
        role = m["role"]
        if role == "system":
            lines.append(f"[system] (policy, {len(m.get('content') or '')} characters)")
            continue
        if m.get("content"):
            label = f"tool {m.get('name', '')}" if role == "tool" else role
            lines.append(f"[{label}] {m['content']}")
        for c in m.get("tool_calls") or []:
            lines.append(f"[{role} → {c['function']['name']}] {c['function']['arguments']}")
    return "".join(line + "\n" for line in lines)
