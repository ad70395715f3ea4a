"""Re-measure the offline leaderboard entries (oracle and random agents, scripted user) and rebuild.

    python leaderboard/measure_offline.py [--tau-bench-dir ../shared/anchors/tau_bench/retail]

Runs ``apigen-gym eval`` on the retail test split, with this project's tasks and with τ-bench's
original tasks (when the τ-bench folder is there), in a temporary folder; writes one submission per
run into ``leaderboard/submissions/`` (no machine paths go into them) and rebuilds the pages.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from apigen_gym.cli import main as cli_main
from apigen_gym.evaluation.leaderboard import TaskSet, build_main, submission_from_run, write_submission

HERE = Path(__file__).resolve().parent
TAU_BENCH_RETAIL = HERE.parent.parent / "shared" / "anchors" / "tau_bench" / "retail"
OFFLINE_MODEL = "none (offline agent)"
AGENTS = {
    "oracle": (1, "Plays each task's gold actions with a scripted dialogue: a harness check, not a model."),
    "random": (3, "Random tool calls with random arguments and random messages (seed 0): a floor."),
}


def run(agent: str, trials: int, out: Path, data_dir: Path | None) -> None:
    """One ``apigen-gym eval`` run of ``agent`` on the retail test split."""
    argv = ["eval", "--env", "apigen/retail-v0", "--split", "test", "--agent", agent]
    argv += ["--trials", str(trials), "--out", str(out)]
    if data_dir is not None:
        argv += ["--data-dir", str(data_dir)]
    if cli_main(argv) != 0:
        raise SystemExit(f"eval of {agent} failed")


def measure(leaderboard_dir: Path, tau_bench_dir: Path | None, work: Path) -> None:
    """Run every offline agent on each task set and write its submission."""
    task_sets: dict[TaskSet, Path | None] = {"apigen-gym": None}
    if tau_bench_dir is not None:
        task_sets["tau-bench"] = tau_bench_dir
    for task_set, data_dir in task_sets.items():
        for agent, (trials, notes) in AGENTS.items():
            out = work / f"{task_set}-{agent}"
            run(agent, trials, out, data_dir)
            submission = submission_from_run(out, model=OFFLINE_MODEL, task_set=task_set, notes=notes)
            print(f"wrote {write_submission(submission, leaderboard_dir).name}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tau-bench-dir", type=Path, default=TAU_BENCH_RETAIL, help="τ-bench retail folder")
    parser.add_argument("--leaderboard-dir", type=Path, default=HERE, help="where submissions/ lives")
    args = parser.parse_args()
    tau_bench = args.tau_bench_dir if args.tau_bench_dir.is_dir() else None
    if tau_bench is None:
        print(
            f"no τ-bench folder at {args.tau_bench_dir}: measuring this project's tasks only", file=sys.stderr
        )
    with tempfile.TemporaryDirectory() as work:
        measure(args.leaderboard_dir, tau_bench, Path(work))
    print(build_main(args.leaderboard_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
