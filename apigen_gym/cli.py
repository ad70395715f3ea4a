"""The ``apigen-gym`` command line: list envs, play one as the agent, evaluate an agent on a split."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar, get_args

from tabulate import tabulate

from apigen_gym.core.domain import DOMAIN_NAMES, DataError, load_domain
from apigen_gym.core.env import ApigenEnv, format_transcript
from apigen_gym.core.registration import ENV_IDS
from apigen_gym.core.tools import ToolKind
from apigen_gym.core.user import UserSimulator
from apigen_gym.evaluation.runner import RESULTS_FILE, evaluate, failure_rows, format_summary, run_settings
from apigen_gym.generation.budget import DEFAULT_PROMPT_BUDGET, MIN_PROMPT_BUDGET
from apigen_gym.llm.settings import (
    DEFAULT_MAX_TOKENS,
    LLMSettings,
    MaxTokens,
    Transport,
    deciding_llm_settings,
)
from apigen_gym.players.agent import Agent
from apigen_gym.players.llm_users import BestOfNUser, LLMUser
from apigen_gym.players.model_agents import ReActAgent, ToolCallingAgent
from apigen_gym.players.oracle import OracleAgent
from apigen_gym.players.random_agent import RandomAgent
from apigen_gym.players.scripted_user import ScriptedUser
from apigen_gym.util import runconfig
from apigen_gym.util.argtypes import NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, SHARE
from apigen_gym.util.executors import Executor, ExecutorError, WorkerLost
from apigen_gym.util.jsonio import UnreadableLines
from apigen_gym.util.runconfig import RunFolderError

_P = TypeVar("_P")


class UsageError(Exception):
    """A bad command line: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class RunFailed(Exception):
    """A run that ran but produced nothing usable (every model call failed): one line, exit status 1."""


def one_line(exc: Exception) -> str:
    """An exception's message on one line; pydantic's validation errors as ``field: problem`` pairs."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        problems = exc.errors(include_url=False)
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in problems)
    return " ".join(str(exc).split())


def claim_folder(path: str | Path, flag: str = "--out") -> Path:
    """The output folder, created if needed; a place where no folder can be is a usage error."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag} {path}: not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: the folder is not writable")
    return folder


def domain_of(env_id: str) -> str:
    """``apigen/retail-v0`` (or ``apigen_gym:apigen/retail-v0``, or just ``retail``) → ``retail``."""
    short = env_id.split(":", 1)[-1]
    if short in ENV_IDS:
        return ENV_IDS[short]
    if short in DOMAIN_NAMES:
        return short
    raise UsageError(f"unknown env {env_id!r} (known: {', '.join(ENV_IDS)})")


def _make_env(args: argparse.Namespace) -> ApigenEnv:
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise UsageError(f"--data-dir {args.data_dir}: no such folder")
    return ApigenEnv(domain_of(args.env), data_dir=args.data_dir, split=args.split, max_steps=args.max_steps)


def cmd_envs(args: argparse.Namespace) -> int:
    rows = []
    for env_id, name in ENV_IDS.items():
        domain = load_domain(name)
        kinds = {kind: len(domain.tools.of_kind(kind)) for kind in ToolKind}
        splits = ", ".join(f"{s} {len(domain.tasks(s))}" for s in domain.splits())
        rows.append(
            (
                env_id,
                len(domain.tools),
                kinds[ToolKind.READ],
                kinds[ToolKind.WRITE],
                len(domain.policy.rules),
                splits,
            )
        )
    print(tabulate(rows, headers=["env id", "tools", "read", "write", "rules", "tasks by split"]))
    return 0


def _add_llm_arguments(parser: argparse.ArgumentParser) -> None:
    """Where and how the models of ``eval`` and ``generate`` are called."""
    parser.add_argument("--base-url", help="OpenAI-compatible base URL (default: OPENAI_BASE_URL, or OpenAI)")
    parser.add_argument("--temperature", type=NON_NEGATIVE, help="sampling temperature passed to the models")
    parser.add_argument("--llm-seed", type=int, help="seed passed to the models")
    parser.add_argument("--timeout", type=POSITIVE, default=120.0, help="seconds per LLM request")
    parser.add_argument(
        "--max-retries", type=NON_NEGATIVE_INT, default=5, help="retries of a failed LLM request"
    )
    parser.add_argument("--cache-dir", type=Path, help="record/replay LLM responses in this folder")
    parser.add_argument(
        "--max-tokens",
        action="append",
        metavar="ROLE=N",
        help="cap of each answer of a role (repeatable, or comma-separated); defaults: "
        + ", ".join(f"{role}={n}" for role, n in DEFAULT_MAX_TOKENS.items()),
    )
    parser.add_argument(
        "--max-in-flight",
        type=POSITIVE_INT,
        help="requests sent at once to one server (e.g. 1 for a llama.cpp server with one slot); "
        "more wait in the client, where no timeout runs",
    )
    parser.add_argument(
        "--transport",
        choices=get_args(Transport),
        default="aiohttp",
        help="aiohttp: the openai client's request on a pooled session (default, cheapest); "
        "openai: through the client's own HTTP stack",
    )


def _add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """Where ``eval`` and ``generate`` play their episodes and blueprints."""
    parser.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local: this process (default); ray: a Ray cluster's workers, this process writes (pip "
        "install 'apigen-gym[ray]'); a run may switch between resumes",
    )
    parser.add_argument(
        "--ray-address",
        help="the Ray cluster, HOST:PORT as 'ray start --head' prints it (default: RAY_ADDRESS, else the "
        "cluster 'ray start' last started on this machine, else a new local one)",
    )
    parser.add_argument(
        "--workers",
        type=POSITIVE_INT,
        help="Ray workers (default: one per CPU of the cluster), each with --concurrency of its own "
        "and a share of --max-in-flight",
    )


def _executor(args: argparse.Namespace) -> Executor | None:
    """The executor the flags ask for, connected (``None``: this process)."""
    if args.executor == "local":
        for flag, value in (("--ray-address", args.ray_address), ("--workers", args.workers)):
            if value is not None:
                raise UsageError(f"{flag} goes with --executor ray")
        return None
    try:
        from apigen_gym.integrations.ray import RayExecutor
    except ImportError as exc:
        raise UsageError(f"--executor ray needs Ray: pip install 'apigen-gym[ray]' ({exc})") from None
    try:
        return RayExecutor(args.ray_address, args.workers).connect()
    except ExecutorError as exc:
        raise UsageError(str(exc)) from None


def _close(executor: Executor | None) -> None:
    close = getattr(executor, "close", None)
    if close is not None:
        close()


def _settings(args: argparse.Namespace, model: str | None, flag: str = "--model") -> LLMSettings:
    """LLM settings from the command line (and ``OPENAI_*`` variables); ``flag`` names the model's option."""
    try:
        return LLMSettings.from_env(
            model=model,
            model_option=flag,
            base_url=args.base_url,
            temperature=args.temperature,
            seed=args.llm_seed,
            timeout=args.timeout,
            max_retries=args.max_retries,
            cache_dir=args.cache_dir,
            max_connections=max(64, args.concurrency * 2),
            max_in_flight=args.max_in_flight,
            transport=args.transport,
        )
    except ValueError as exc:
        raise UsageError(one_line(exc)) from None


def _caps(args: argparse.Namespace) -> MaxTokens:
    """Each role's ``max_tokens`` from ``--max-tokens ROLE=N``."""
    try:
        return MaxTokens.parse(args.max_tokens)
    except ValueError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None


def _deciding(settings: LLMSettings, cap: int) -> dict[str, Any]:
    """What binds an eval folder to a model: the model, its sampling and its answers' cap, not where
    it is served."""
    return {**deciding_llm_settings(settings.model_dump(mode="json")), "max_tokens": cap}


Factory = tuple[Callable[[], _P], str, dict[str, Any]]
"""Makes one player per episode; says which backend it is; what in it binds the results folder."""


def _agent_factory(args: argparse.Namespace, env: ApigenEnv) -> Factory[Agent]:
    """Makes one agent per episode (sharing one LLM client)."""
    kind = args.agent or ("tool-calling" if args.agent_model else "oracle")
    if kind in ("oracle", "random"):
        if args.agent_model:
            raise UsageError(
                f"--agent {kind} plays offline: drop --agent-model, or use --agent tool-calling|react"
            )
        tools = env.domain.tools
        seed = args.seed
        if kind == "oracle":
            return (lambda: OracleAgent(tools)), "oracle (offline)", {}
        return (lambda: RandomAgent(seed=seed)), "random (offline)", {"seed": seed}
    from apigen_gym.llm.client import LLMClient  # the HTTP stack loads only when a model is used

    settings = _settings(args, args.agent_model, "--agent-model")
    client = LLMClient(settings)
    args.clients.append(client)
    agent_class = ReActAgent if kind == "react" else ToolCallingAgent
    cap = _caps(args).agent
    where = f"{kind} model={settings.model} ({settings.base_url or 'OpenAI'}) max_tokens={cap}"
    return (lambda: agent_class(client, cap)), where, {"agent_model": _deciding(settings, cap)}


def _check_user_flags(args: argparse.Namespace, llm_user: bool, how: str) -> None:
    """Best-of-N and its critic only go with an LLM user (``how`` says how to ask for one)."""
    if not llm_user and args.user_best_of != 1:
        raise UsageError(f"--user-best-of needs an LLM user: {how}")
    if not llm_user and args.critic_model:
        raise UsageError(f"--critic-model scores an LLM user's candidates: {how}")
    if args.critic_model and args.user_best_of == 1:
        raise UsageError("--critic-model scores best-of-N candidates: add --user-best-of N (N > 1)")


def _user_factory(args: argparse.Namespace) -> Factory[UserSimulator]:
    _check_user_flags(args, args.user == "llm", "use --user llm --user-model MODEL")
    if args.user == "scripted":
        if args.user_model:
            raise UsageError("--user scripted plays offline: drop --user-model, or use --user llm")
        return ScriptedUser, "scripted (offline)", {}
    from apigen_gym.llm.client import LLMClient

    settings = _settings(args, args.user_model, "--user-model")
    client = LLMClient(settings)
    critic_settings = _settings(args, args.critic_model, "--critic-model") if args.critic_model else settings
    critic = LLMClient(critic_settings) if args.critic_model else client
    args.clients += [client, critic]
    best_of = args.user_best_of
    caps = _caps(args)
    user_cap, critic_cap = caps.user, caps.critic
    where = f"model={settings.model} ({settings.base_url or 'OpenAI'}) max_tokens={user_cap}"
    bound: dict[str, Any] = {"user_model": _deciding(settings, user_cap)}
    if best_of > 1:
        bound.update(user_best_of=best_of, critic_model=_deciding(critic_settings, critic_cap))
        label = f"llm best-of-{best_of} {where} critic max_tokens={critic_cap}"
        return (lambda: BestOfNUser(client, critic, best_of, user_cap, critic_cap)), label, bound
    return (lambda: LLMUser(client, user_cap)), f"llm {where}", bound


def cmd_eval(args: argparse.Namespace) -> int:
    env = _make_env(args)
    args.clients = []
    make_agent, agent_label, agent_settings = _agent_factory(args, env)
    make_user, user_label, user_settings = _user_factory(args)
    task_ids = args.tasks.split(",") if args.tasks else None
    known = {t.id for t in env.tasks}
    for task_id in task_ids or []:
        if task_id not in known:
            raise UsageError(f"--tasks: no task {task_id!r} in split {args.split!r}")

    def make_env() -> ApigenEnv:
        return ApigenEnv(
            env.domain, data_dir=args.data_dir, split=args.split, max_steps=args.max_steps, user=make_user()
        )

    settings = {**agent_settings, **user_settings}
    try:
        runconfig.check(args.out, run_settings(make_env(), make_agent(), settings))
    except RunFolderError as exc:
        raise UsageError(str(exc)) from None
    executor = _executor(args)
    try:
        out = claim_folder(args.out)
        where = f" per worker, executor={executor.describe()}" if executor is not None else ""
        print(
            f"eval {args.env} split={args.split} agent={agent_label} user={user_label} trials={args.trials} "
            f"concurrency={args.concurrency}{where} → {out / RESULTS_FILE}",
            file=sys.stderr,
        )
        results = evaluate(
            make_env,
            make_agent,
            out,
            task_ids,
            trials=args.trials,
            concurrency=args.concurrency,
            progress=sys.stderr.isatty(),
            clients=args.clients,
            retry_errors=args.retry_errors,
            settings=settings,
            executor=executor,
        )
    except RunFolderError as exc:
        raise UsageError(str(exc)) from None
    except ExecutorError as exc:
        raise RunFailed(str(exc)) from None
    finally:
        _close(executor)
    summaries = results.summaries  # the messages are not needed: after a Ray run they are not read
    print(format_summary(summaries))
    failures = failure_rows(summaries)
    if failures:
        print()
        print(tabulate(failures, headers=["failed task", "trial", "why"]))
    errors = Counter(r.error for r in summaries if r.error)
    if results and errors.total() == len(results):
        label, count = errors.most_common(1)[0]
        kinds = sorted({error.split(":", 1)[0] for error in errors})
        raise RunFailed(
            f"every episode ({len(results)}) ended in an error ({', '.join(kinds)})"
            + (f", e.g. {label}" if count < len(results) else f": {label}")
        )
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    env = _make_env(args)
    task_id = args.task if args.task is not None else env.tasks[0].id
    if task_id not in {t.id for t in env.tasks}:
        raise UsageError(f"--task: no task {task_id!r} in split {args.split!r}")
    observation, info = env.reset(options={"task_id": task_id})
    print(f"Task {task_id}. You are the agent. Type a message for the user, or a tool call as JSON:")
    print('  {"name": "find_user_id_by_email", "arguments": {"email": "..."}}')
    print("Commands: /tools lists the tools, /policy shows the policy, /quit ends the episode.\n")
    print(f"[user] {observation}")
    done = False
    while not done:
        try:
            line = input("agent> ").strip()
        except EOFError:
            line = "/quit"
        if not line:
            continue
        if line == "/tools":
            for schema in info["tools"]:
                fn = schema["function"]
                print(f"  {fn['name']}({', '.join(fn['parameters']['properties'])}): {fn['description']}")
            continue
        if line == "/policy":
            print(env.policy)
            continue
        action = "###STOP###" if line == "/quit" else line
        observation, _, terminated, truncated, step_info = env.step(action)
        print(format_transcript(env.messages[-1:]), end="")
        done = terminated or truncated
    print()
    print(json.dumps(step_info["reward_info"], indent=2))
    print(f"reward: {step_info['reward_info']['reward']}")
    return 0


def cmd_serve_llm(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from apigen_gym.loopback.config import check_host, config_from_args
    from apigen_gym.loopback.server import run_server

    try:
        config = config_from_args(args)
        check_host(args.host, args.allow_remote)
    except (ValidationError, ValueError) as exc:
        raise UsageError(one_line(exc)) from None
    try:
        run_server(config, args.host, args.port, allow_remote=args.allow_remote)
    except OSError as exc:
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {exc}") from None
    return 0


def cmd_serve_env(args: argparse.Namespace) -> int:
    from apigen_gym.loopback.config import check_host

    try:
        check_host(args.host, args.allow_remote)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.max_sessions < 1:
        raise UsageError("--max-sessions must be at least 1")
    env = _make_env(args)
    domain = env.domain
    try:
        from apigen_gym.integrations.openenv import serve
    except ImportError as exc:
        raise UsageError(
            f"serve-env needs the openenv extra: pip install 'apigen-gym[openenv]' ({exc})"
        ) from None

    def make_env() -> ApigenEnv:
        return ApigenEnv(
            domain,
            data_dir=args.data_dir,
            database=env.database,
            split=args.split,
            max_steps=args.max_steps,
            reward_mode=args.reward_mode,
        )

    print(
        f"serve-env {args.env} split={args.split} ({len(env.tasks)} tasks) user=scripted (offline) "
        f"reward={args.reward_mode}: OpenEnv on ws://{args.host}:{args.port}/ws, "
        f"at most {args.max_sessions} sessions",
        file=sys.stderr,
    )
    try:
        serve(args.env, make_env, args.host, args.port, args.max_sessions, args.session_timeout)
    except OSError as exc:
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {exc}") from None
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from apigen_gym.generation.config import GenerationConfig
    from apigen_gym.generation.pipeline import GenerationError, format_run, generate, outage

    domain = domain_of(args.domain)
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise UsageError(f"--data-dir {args.data_dir}: no such folder")
    _check_user_flags(args, args.user_model is not None, "add --user-model MODEL")

    def model(name: str | None, flag: str) -> LLMSettings | None:
        return None if name is None else _settings(args, name, flag)

    try:
        config = GenerationConfig(
            domain=domain,
            n=args.n,
            phase=args.phase,
            seed=args.seed,
            data_dir=args.data_dir,
            proposer=model(args.model, "--model"),
            judges=[_settings(args, m, "--judge-model") for m in args.judge_model or []],
            acceptance_threshold=args.threshold,
            feedback_rounds=args.rounds,
            recombine=args.recombine,
            evolving=args.evolving,
            user=model(args.user_model, "--user-model"),
            user_best_of=args.user_best_of,
            critic=model(args.critic_model, "--critic-model"),
            agent=model(args.agent_model, "--agent-model"),
            max_tokens=_caps(args),
            prompt_budget=args.prompt_budget,
            attempts=args.attempts,
            concurrency=args.concurrency,
        )
    except ValidationError as exc:
        raise UsageError(one_line(exc)) from None
    executor = _executor(args)
    try:
        out = claim_folder(args.out)
        stats = generate(config, out, progress=sys.stderr.isatty(), executor=executor)
        print(format_run(config, out, stats, executor))
    except ExecutorError as exc:
        raise RunFailed(str(exc)) from None
    except (GenerationError, ValueError) as exc:
        raise UsageError(one_line(exc)) from None
    finally:
        _close(executor)
    failure = outage(stats)
    if failure:
        raise RunFailed(f"{failure} (see {out / 'stats.json'})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from apigen_gym.generation.pipeline import GenerationError, export_main

    if not Path(args.run).is_dir():
        raise UsageError(f"{args.run}: no such folder")
    out = args.out or str(Path(args.run) / f"export-{args.format}.jsonl")
    try:
        print(export_main(args.run, args.format, out, drop_stop=args.drop_stop))
    except (GenerationError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from apigen_gym.evaluation.report import report_main

    if not Path(args.dir).is_dir():
        raise UsageError(f"{args.dir}: no such folder")
    print(report_main(args.dir, args.format))
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from apigen_gym.evaluation.leaderboard import build_main, submit_main

    if args.action == "build":
        print(build_main(args.dir))
        return 0
    if not Path(args.run).is_dir():
        raise UsageError(f"{args.run}: no such folder")
    fields = {
        "model": args.model,
        "agent": args.agent,
        "user_model": args.user_model,
        "task_set": args.task_set,
        "split": args.split,
        "notes": args.notes,
    }
    print(submit_main(args.run, args.dir, **{k: v for k, v in fields.items() if v is not None}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="apigen-gym", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("envs", help="list the environments with their tools and task counts")

    def env_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--env", required=True, help="env id, e.g. apigen/retail-v0")
        p.add_argument("--split", default="test", help="task split (default: test)")
        p.add_argument("--data-dir", help="a τ-bench-layout folder (db/*.json, tasks/<split>.jsonl)")
        p.add_argument("--max-steps", type=POSITIVE_INT, default=60, help="agent actions before truncation")

    play = sub.add_parser("play", help="be the agent in one conversation with the scripted user")
    env_options(play)
    play.add_argument("--task", help="task id (default: the split's first task)")

    ev = sub.add_parser("eval", help="run an agent on every task of a split and score it")
    env_options(ev)
    ev.add_argument(
        "--agent",
        choices=["oracle", "random", "tool-calling", "react"],
        help="oracle or random (offline); tool-calling (default with --agent-model) or react (model agents)",
    )
    ev.add_argument("--agent-model", help="the agent's model (any OpenAI-compatible server)")
    ev.add_argument("--user", choices=["scripted", "llm"], default="scripted", help="user simulator")
    ev.add_argument("--user-model", help="the LLM user's model")
    ev.add_argument(
        "--user-best-of", type=POSITIVE_INT, default=1, help="APIGen-MT best-of-N LLM user (N candidates)"
    )
    ev.add_argument("--critic-model", help="the best-of-N critic's model (default: the user model)")
    _add_llm_arguments(ev)
    ev.add_argument("--tasks", help="comma-separated task ids (default: all)")
    ev.add_argument("--trials", type=POSITIVE_INT, default=1, help="trials per task")
    ev.add_argument("--concurrency", type=POSITIVE_INT, default=8, help="episodes in flight")
    ev.add_argument("--seed", type=int, default=0, help="seed of the random agent")
    ev.add_argument("--out", required=True, help="output folder; re-running resumes")
    ev.add_argument(
        "--retry-errors",
        action="store_true",
        help="on resume, run again the episodes that ended in an LLM error",
    )
    _add_executor_arguments(ev)

    gen = sub.add_parser("generate", help="APIGen-MT: verified task blueprints, then verified dialogues")
    gen.add_argument("--domain", required=True, help="retail, airline or travel (or an env id)")
    gen.add_argument("-n", type=POSITIVE_INT, required=True, help="task blueprints to accept")
    gen.add_argument("--phase", choices=["1", "2", "all"], default="all", help="which phases to run")
    gen.add_argument("--out", required=True, help="the run folder; re-running resumes")
    gen.add_argument("--seed", type=int, default=0, help="seed of the run")
    gen.add_argument("--data-dir", help="a τ-bench-layout folder (default: the shipped data)")
    gen.add_argument("--model", help="the proposer's model (default: the offline template proposer)")
    gen.add_argument("--judge-model", action="append", help="a review-committee judge's model (repeatable)")
    gen.add_argument("--threshold", type=SHARE, default=0.5, help="share of committee criteria to pass")
    gen.add_argument("--rounds", type=POSITIVE_INT, help="proposal rounds with feedback (default per domain)")
    gen.add_argument("--recombine", type=SHARE, default=0.2, help="extra recombined tasks, as a share of n")
    gen.add_argument(
        "--evolving", type=SHARE, default=0.25, help="share of blueprints whose goal evolves mid-conversation"
    )
    gen.add_argument("--user-model", help="phase 2 LLM user's model (default: the scripted user)")
    gen.add_argument("--user-best-of", type=POSITIVE_INT, default=1, help="best-of-N LLM user")
    gen.add_argument("--critic-model", help="the best-of-N critic's model")
    gen.add_argument("--agent-model", help="phase 2 agent's model (default: the oracle agent)")
    gen.add_argument("--attempts", type=POSITIVE_INT, default=3, help="phase 2 attempts per task")
    gen.add_argument("--concurrency", type=POSITIVE_INT, default=8, help="LLM calls or episodes in flight")
    gen.add_argument(
        "--prompt-budget",
        type=POSITIVE_INT,
        default=DEFAULT_PROMPT_BUDGET,
        metavar="TOKENS",
        help="estimated prompt tokens of each proposer and judge request: their prompts show less of "
        f"the context until they fit (default {DEFAULT_PROMPT_BUDGET}, for 8k-context models; "
        f"at least {MIN_PROMPT_BUDGET})",
    )
    _add_llm_arguments(gen)
    _add_executor_arguments(gen)

    export = sub.add_parser("export", help="a generation run's verified dialogues as training data")
    export.add_argument("run", help="the run folder")
    export.add_argument("--format", choices=["openai", "sharegpt"], default="openai")
    export.add_argument("--out", help="output JSONL (default: RUN/export-<format>.jsonl)")
    export.add_argument(
        "--drop-stop",
        action="store_true",
        help="take the ###STOP### control message out of the training text (default: kept; the "
        "provenance's termination says why each dialogue ended)",
    )

    from apigen_gym.loopback.config import DESCRIPTION as SERVER_DESCRIPTION
    from apigen_gym.loopback.config import add_arguments as server_arguments

    serve = sub.add_parser(
        "serve-llm",
        help="the loopback OpenAI-compatible server with scripted models",
        description=SERVER_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    server_arguments(serve)

    serve_env = sub.add_parser("serve-env", help="serve an env with OpenEnv's server (WebSocket sessions)")
    env_options(serve_env)
    serve_env.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve_env.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    serve_env.add_argument("--max-sessions", type=int, default=64, help="concurrent sessions (default: 64)")
    serve_env.add_argument("--session-timeout", type=float, help="free sessions idle this many seconds")
    serve_env.add_argument("--reward-mode", choices=["binary", "partial"], default="binary")
    serve_env.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback host")

    report = sub.add_parser("report", help="metrics and failure analysis of an eval folder")
    report.add_argument("dir", help="a folder with results.jsonl")
    report.add_argument("--format", choices=["terminal", "markdown"], default="terminal")

    board = sub.add_parser("leaderboard", help="build the leaderboard, or submit a run to it")
    board_sub = board.add_subparsers(dest="action", required=True, parser_class=_Parser)
    build = board_sub.add_parser("build", help="write leaderboard/README.md and leaderboard/index.html")
    build.add_argument("--dir", default="leaderboard", help="the leaderboard folder (default: leaderboard)")
    submit = board_sub.add_parser("submit", help="add an eval folder as a submission, then rebuild")
    submit.add_argument("run", help="the eval folder (with results.jsonl)")
    submit.add_argument("--model", required=True, help="the agent's model ('none' for offline agents)")
    submit.add_argument("--agent", help="agent kind (default: from the results)")
    submit.add_argument("--user-model", help="the user simulator's model")
    submit.add_argument("--task-set", choices=["apigen-gym", "tau-bench"], help="whose tasks were run")
    submit.add_argument("--split", help="the split that was run")
    submit.add_argument("--notes", help="free text shown with the entry")
    submit.add_argument("--dir", default="leaderboard", help="the leaderboard folder (default: leaderboard)")
    return parser


COMMANDS = {
    "envs": cmd_envs,
    "eval": cmd_eval,
    "play": cmd_play,
    "report": cmd_report,
    "serve-llm": cmd_serve_llm,
    "serve-env": cmd_serve_env,
    "generate": cmd_generate,
    "export": cmd_export,
    "leaderboard": cmd_leaderboard,
}


def _one_line_warnings(show: Callable[..., None]) -> Callable[..., None]:
    """``warnings.showwarning`` that prints the project's own warnings as one line each
    (``apigen-gym: warning: ...``) and hands the others to ``show``."""

    def shown(message: Warning | str, category: type[Warning], *rest: Any, **kwargs: Any) -> None:
        if issubclass(category, (UnreadableLines, WorkerLost)):
            print(f"apigen-gym: warning: {message}", file=sys.stderr)
        else:
            show(message, category, *rest, **kwargs)

    return shown


def main(argv: Sequence[str] | None = None) -> int:
    with warnings.catch_warnings():  # the project's warnings: every time, one line each
        warnings.simplefilter("always", UnreadableLines)
        warnings.simplefilter("always", WorkerLost)
        warnings.showwarning = _one_line_warnings(warnings.showwarning)
        try:
            args = build_parser().parse_args(argv)
            return COMMANDS[args.command](args)
        except (UsageError, DataError) as exc:
            print(f"apigen-gym: error: {exc}", file=sys.stderr)
            return 2
        except RunFailed as exc:
            print(f"apigen-gym: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("apigen-gym: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
