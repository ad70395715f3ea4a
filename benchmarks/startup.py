"""Start-up time: ``apigen-gym --help`` and ``import apigen_gym`` in fresh interpreters.

Each command runs in a new process, the commands interleaved, ``--runs`` times; the table gives the
median wall time and, beside it, a bare interpreter (``python -c pass``) measured the same way.

    python benchmarks/startup.py
    python benchmarks/startup.py --runs 21
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

from tabulate import tabulate


def commands() -> dict[str, list[str]]:
    cli = shutil.which("apigen-gym")
    return {
        "python -c pass (bare interpreter)": [sys.executable, "-c", "pass"],
        "import apigen_gym": [sys.executable, "-c", "import apigen_gym"],
        "import apigen_gym; gym.make('apigen/retail-v0')": [
            sys.executable,
            "-c",
            "import gymnasium as gym, apigen_gym; gym.make('apigen/retail-v0')",
        ],
        "apigen-gym --help": [cli, "--help"] if cli else [sys.executable, "-m", "apigen_gym.cli", "--help"],
        "apigen-gym envs": [cli, "envs"] if cli else [sys.executable, "-m", "apigen_gym.cli", "envs"],
    }


def seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    runs = commands()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for argv in runs.values():  # warm the file cache once
        seconds(argv)
    for _ in range(args.runs):
        for name, argv in runs.items():
            times[name].append(seconds(argv))
    bare = statistics.median(times["python -c pass (bare interpreter)"])
    rows = [
        [
            name,
            f"{statistics.median(t):.3f}",
            f"{min(t):.3f}–{max(t):.3f}",
            f"{statistics.median(t) - bare:.3f}",
        ]
        for name, t in times.items()
    ]
    print(f"median of {args.runs} runs each, fresh processes, interleaved\n")
    print(tabulate(rows, headers=["command", "s", "range", "s above a bare interpreter"], tablefmt="github"))


if __name__ == "__main__":
    main()
