"""The ``apigen-gym`` command line: list envs, play one as the agent, evaluate an agent on a split."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from tabulate import tabulate

from apigen_gym.agents import Agent, OracleAgent, RandomAgent
from apigen_gym.domain import DOMAIN_NAMES, DataError, load_domain
from apigen_gym.env import ApigenEnv, format_transcript
from apigen_gym.evaluation import evaluate, failure_rows, format_summary
from apigen_gym.registration import ENV_IDS
from apigen_gym.tools import ToolKind


class UsageError(Exception):
    """A bad command line: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


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


def _make_agent(name: str, env: ApigenEnv, seed: int) -> Agent:
    if name == "oracle":
        return OracleAgent(env.domain.tools)
    return RandomAgent(seed=seed)


def cmd_eval(args: argparse.Namespace) -> int:
    env = _make_env(args)
    agent = _make_agent(args.agent, env, args.seed)
    task_ids = args.tasks.split(",") if args.tasks else None
    known = {t.id for t in env.tasks}
    for task_id in task_ids or []:
        if task_id not in known:
            raise UsageError(f"--tasks: no task {task_id!r} in split {args.split!r}")
    print(
        f"eval {args.env} split={args.split} agent={agent.name} (offline) user={env.user.name} (offline) "
        f"trials={args.trials} → {Path(args.out) / 'results.jsonl'}",
        file=sys.stderr,
    )
    results = evaluate(env, agent, args.out, task_ids, trials=args.trials)
    print(format_summary(results))
    failures = failure_rows(results)
    if failures:
        print()
        print(tabulate(failures, headers=["failed task", "trial", "why"]))
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="apigen-gym", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("envs", help="list the environments with their tools and task counts")

    def env_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--env", required=True, help="env id, e.g. apigen/retail-v0")
        p.add_argument("--split", default="test", help="task split (default: test)")
        p.add_argument("--data-dir", help="a τ-bench-layout folder (db/*.json, tasks/<split>.jsonl)")
        p.add_argument("--max-steps", type=int, default=60, help="agent actions before truncation")

    play = sub.add_parser("play", help="be the agent in one conversation with the scripted user")
    env_options(play)
    play.add_argument("--task", help="task id (default: the split's first task)")

    ev = sub.add_parser("eval", help="run an agent on every task of a split and score it")
    env_options(ev)
    ev.add_argument("--agent", choices=["oracle", "random"], default="oracle", help="offline agent")
    ev.add_argument("--tasks", help="comma-separated task ids (default: all)")
    ev.add_argument("--trials", type=int, default=1, help="trials per task")
    ev.add_argument("--seed", type=int, default=0, help="seed of the random agent")
    ev.add_argument("--out", required=True, help="output folder; re-running resumes")
    return parser


COMMANDS = {"envs": cmd_envs, "eval": cmd_eval, "play": cmd_play}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "trials", 1) < 1:
            raise UsageError("--trials must be at least 1")
        if getattr(args, "max_steps", 1) < 1:
            raise UsageError("--max-steps must be at least 1")
        return COMMANDS[args.command](args)
    except (UsageError, DataError) as exc:
        print(f"apigen-gym: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("apigen-gym: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
