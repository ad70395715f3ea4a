"""A local model on llama.cpp's own server: its speed, seconds per episode, and acceptance rates.

Starts llama.cpp's server through ``apigen_gym.integrations.llamacpp`` (the ``xllamacpp`` wheel, the
project's tool-calling template) on a GGUF model, by default the shared SmolLM2-135M-Instruct Q4_1,
with one thread and one slot, and measures on the real ``openai`` client path:

- speed: prompt processing and generation in tokens per second, from the server's own timings
  (median of several requests, each with a fresh prompt so that no prompt cache helps);
- prompts: the proposer's and the judges' prompts of each domain at the default prompt budget, in
  the server's own tokens (chat template and tokenizer), and how far the budget's estimate is above;
- episodes: the tool-calling agent against the scripted user on the first tasks of each domain's
  test split, ``--max-steps`` actions, answers capped; the first episode of a domain processes the
  whole policy and tools' schemas (cold), the next ones reuse the server's prompt cache (warm);
- acceptance: Phase 1 with the model as proposer and judge (``--blueprints`` blueprints, each with
  ``--rounds`` feedback rounds), the model as the review committee of template blueprints, and
  Phase 2 with the model as user and agent on tasks accepted offline.

The README's "Using local models" numbers come from this script.

    python benchmarks/local_model.py
    python benchmarks/local_model.py --model path/to/model.gguf --tasks 3 --max-steps 4
    python benchmarks/local_model.py --skip-generation
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from tabulate import tabulate

from apigen_gym.core.env import ApigenEnv
from apigen_gym.evaluation.runner import evaluate
from apigen_gym.generation import phase1
from apigen_gym.generation.blueprint import ProposalError
from apigen_gym.generation.budget import DEFAULT_PROMPT_BUDGET, messages_tokens
from apigen_gym.generation.config import GenerationConfig
from apigen_gym.generation.phase1 import Phase1Worker
from apigen_gym.generation.pipeline import generate
from apigen_gym.generation.proposers import TemplateProposer, proposer_messages
from apigen_gym.generation.stats import GenerationStats
from apigen_gym.generation.store import RunPaths
from apigen_gym.generation.validators import check_rules, judge_messages
from apigen_gym.integrations.llamacpp import LlamaCppServer
from apigen_gym.llm.client import LLMClient
from apigen_gym.llm.settings import LLMSettings, MaxTokens
from apigen_gym.players.model_agents import ToolCallingAgent

MODEL = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
DOMAINS = ("retail", "airline", "travel")
CAPS = "agent=40,user=24,critic=24,judge=256,proposer=400,recombine=48"
"""Answers capped as in ``tests/test_llamacpp.py``: a 135M model's answers run on otherwise."""
ALIAS = "local"


def post(url: str, body: dict[str, Any], timeout: float = 600) -> Any:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=timeout).read())


def speed(server: LlamaCppServer, repeats: int) -> list[tuple[str, str]]:
    """Prompt and generation tokens per second, from the server's timings, median of ``repeats``."""
    policy = ApigenEnv("retail").policy
    prompt_rates, generation_rates, sizes = [], [], []
    for _ in range(repeats):
        fresh = f"Ticket {secrets.token_hex(8)}. Summarise this policy for a new colleague.\n\n{policy}"
        answer = post(
            f"{server.base_url}/chat/completions",
            {"model": ALIAS, "messages": [{"role": "user", "content": fresh}], "max_tokens": 64},
        )
        timings = answer["timings"]
        prompt_rates.append(timings["prompt_per_second"])
        generation_rates.append(timings["predicted_per_second"])
        sizes.append(timings["prompt_n"])
    return [
        (
            "prompt processing",
            f"{statistics.median(prompt_rates):.0f} tokens/s ({statistics.median(sizes):.0f}-token prompts)",
        ),
        ("generation", f"{statistics.median(generation_rates):.0f} tokens/s"),
    ]


def prompt_sizes(server: LlamaCppServer, count: int) -> list[list[str]]:
    """Proposer and judge prompts of ``count`` contexts per domain at the default budget, in the
    server's tokens: median and largest, and the estimate's margin (its smallest ratio to them)."""
    rows = []
    for domain in DOMAINS:
        run = Phase1Worker(GenerationConfig(domain=domain, n=1))
        proposer, judges, ratios = [], [], []
        for index in range(count):
            context = run.context(index)
            asked = [proposer_messages(context, [])]
            proposer.append(server.prompt_tokens(asked[0]))
            blueprint = TemplateProposer.for_domain(run.domain, run.database).propose_now(
                context, random.Random(index)
            )
            check = check_rules(run.domain, run.database, blueprint)
            if check.passed and check.session is not None and not isinstance(blueprint, ProposalError):
                policy = "\n\n".join(f"## {s.title}\n{s.text}" for s in context.policy)
                asked.append(judge_messages(run.domain, blueprint, check.session, policy))
                judges.append(server.prompt_tokens(asked[-1]))
            ratios += [messages_tokens(m) / server.prompt_tokens(m) for m in asked]
        rows.append(
            [
                domain,
                f"{statistics.median(proposer):.0f} / {max(proposer)}",
                f"{statistics.median(judges):.0f} / {max(judges)}" if judges else "n/a",
                f"{min(ratios):.2f}–{max(ratios):.2f}",
            ]
        )
    return rows


def settings_of(server: LlamaCppServer) -> LLMSettings:
    return LLMSettings(model=ALIAS, base_url=server.base_url, timeout=600, max_in_flight=server.slots)


def episodes(server: LlamaCppServer, tasks: int, max_steps: int, folder: Path) -> list[list[str]]:
    """The tool-calling agent against the scripted user: seconds per episode, cold and warm, by domain."""
    rows = []
    caps = MaxTokens.parse([CAPS])
    for domain in DOMAINS:
        env = ApigenEnv(domain)
        task_ids = [t.id for t in env.tasks[:tasks]]
        client = LLMClient(settings_of(server))
        results = evaluate(
            lambda: ApigenEnv(domain, max_steps=max_steps),  # noqa: B023 (used at once)
            lambda: ToolCallingAgent(client, caps.agent),  # noqa: B023
            folder / domain,
            task_ids,
            clients=[client],
        )
        first, rest = results[0], results[1:]
        warm = statistics.median(r.seconds for r in rest) if rest else float("nan")
        rows.append(
            [
                domain,
                f"{first.seconds:.1f}",
                f"{warm:.1f}",
                f"{statistics.median(r.usage.prompt_tokens for r in results):.0f}",
                f"{statistics.median(r.usage.completion_tokens for r in results):.0f}",
                ", ".join(sorted({r.termination or "" for r in results})),
            ]
        )
    return rows


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole} ({part / whole:.0%})" if whole else "n/a"


def _phase1_row(label: str, stats: GenerationStats) -> list[str]:
    p1 = stats.phase1 or {}
    stages = p1.get("stages") or {}
    passed = {s: f"{c['passed']}/{c['reached']}" for s, c in stages.items()}
    rejected = "; ".join(
        f"{stage}: " + ", ".join(f"{kind} {n}" for kind, n in kinds.items())
        for stage, kinds in (p1.get("rejections") or {}).items()
    )
    accepted = int(p1.get("accepted") or 0)  # one accepted proposal round per accepted blueprint
    return [
        label,
        _share(accepted, int(p1.get("blueprints") or 0)),
        _share(accepted, int(p1.get("proposals") or 0)),
        " ".join(f"{s} {v}" for s, v in passed.items()),
        rejected or "-",
    ]


def acceptance(server: LlamaCppServer, args: argparse.Namespace, folder: Path) -> tuple[list[list[str]], str]:
    """Phase 1 with the model proposing and judging, judging template blueprints; Phase 2 with it."""
    model = settings_of(server)
    caps = MaxTokens.parse([CAPS])
    phase1.MAX_BLUEPRINTS_PER_TASK = 1  # n blueprints, accepted or not: a small model accepts few
    common: dict[str, Any] = {
        "domain": args.domain,
        "recombine": 0,
        "max_tokens": caps,
        "prompt_budget": args.prompt_budget,
    }
    started = time.perf_counter()
    proposing = generate(
        GenerationConfig(
            n=args.blueprints,
            phase="1",
            proposer=model,
            judges=[model],
            feedback_rounds=args.rounds,
            **common,
        ),
        folder / "proposer",
    )
    judging = generate(
        GenerationConfig(n=args.blueprints, phase="1", judges=[model], feedback_rounds=1, **common),
        folder / "committee",
    )
    offline, played = RunPaths(folder / "offline"), RunPaths(folder / "phase2")
    generate(GenerationConfig(n=args.episodes, phase="1", domain=args.domain, recombine=0), offline.root)
    played.accepted.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(offline.accepted, played.accepted)  # the tasks accepted offline, played by the model
    dialogues = generate(
        GenerationConfig(n=args.episodes, phase="2", user=model, agent=model, attempts=1, **common),
        played.root,
        max_steps=args.max_steps,
    )
    seconds = time.perf_counter() - started
    p2 = dialogues.phase2
    rows = [
        _phase1_row("Phase 1: model proposes, model judges", proposing),
        _phase1_row("Phase 1: template proposes, model judges", judging),
        [
            f"Phase 2: model as user and agent (--max-steps {args.max_steps})",
            _share(p2.dialogues, p2.episodes),
            "",
            "",
            ", ".join(f"{label} {n}" for label, n in p2.failures.items()) or "-",
        ],
    ]
    return rows, f"{seconds:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, default=MODEL, help="the GGUF model (default: the shared SmolLM2)"
    )
    parser.add_argument("--threads", type=int, default=1, help="server threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="requests for the speed medians")
    parser.add_argument("--contexts", type=int, default=12, help="contexts per domain for prompt sizes")
    parser.add_argument("--tasks", type=int, default=2, help="episodes per domain")
    parser.add_argument("--max-steps", type=int, default=3, help="agent actions per episode")
    parser.add_argument("--domain", default="retail", help="the domain of the generation runs")
    parser.add_argument("--blueprints", type=int, default=3, help="Phase 1 blueprints per run")
    parser.add_argument("--rounds", type=int, default=2, help="proposal rounds per blueprint")
    parser.add_argument("--episodes", type=int, default=2, help="Phase 2 tasks (one attempt each)")
    parser.add_argument("--prompt-budget", type=int, default=3000, help="generation prompts' budget")
    parser.add_argument("--skip-generation", action="store_true", help="speed and episodes only")
    args = parser.parse_args()
    if not args.model.is_file():
        parser.error(f"no model file at {args.model} (give --model)")
    print(f"model {args.model.name}, llama.cpp (xllamacpp), {args.threads} thread(s), 1 slot")
    print(f"answers capped: {CAPS}")
    with LlamaCppServer(args.model, threads=args.threads, slots=1, alias=ALIAS) as server:
        print()
        print(tabulate(speed(server, args.repeats), headers=["what", "measured"]))
        with tempfile.TemporaryDirectory() as tmp:
            sizes = prompt_sizes(server, args.contexts)
            print()
            print(
                f"prompts at the default budget ({DEFAULT_PROMPT_BUDGET}), {args.contexts} contexts a domain"
            )
            headers = ["domain", "proposer, median / max", "judges, median / max", "estimate / server tokens"]
            print(tabulate(sizes, headers=headers))
            rows = episodes(server, args.tasks, args.max_steps, Path(tmp))
            print()
            print(f"episodes: tool-calling agent, scripted user, {args.tasks} tasks per domain, ", end="")
            print(f"--max-steps {args.max_steps}")
            headers = [
                "domain",
                "first episode (s)",
                "later, median (s)",
                "prompt tokens",
                "completion tokens",
                "ended by",
            ]
            print(tabulate(rows, headers=headers))
            if not args.skip_generation:
                table, seconds = acceptance(server, args, Path(tmp))
                print()
                print(f"acceptance ({args.domain}, prompt budget {args.prompt_budget}; {seconds} in all)")
                headers = [
                    "run",
                    "accepted (of blueprints / episodes)",
                    "of proposals",
                    "stages passed",
                    "rejections",
                ]
                print(tabulate(table, headers=headers))
    print("\nthe paper (APIGen-MT, GPT-4o-class models): 70 % of Phase 1 blueprints accepted, ", end="")
    print("67 % of Phase 2 trajectories")


if __name__ == "__main__":
    main()
