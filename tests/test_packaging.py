"""The wheel ships the library and the domains (with their data), and works from any directory."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import gymnasium as gym
from gymnasium.utils.env_checker import check_env
env = gym.make("apigen_gym:apigen/retail-v0")  # no import of apigen_gym before this line
import apigen_gym
assert apigen_gym.__file__.startswith(INSTALLED), apigen_gym.__file__
check_env(gym.make("apigen/retail-v0").unwrapped, skip_render_check=True)
obs, info = env.reset(seed=0)
print("ok", len(env.unwrapped.tasks), len(info["tools"]))
"""


def test_wheel_installs_and_runs_from_another_directory(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("apigen_gym-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for expected in (
        "apigen_gym/core/env.py",
        "apigen_gym/domains/retail/tools.py",
        "apigen_gym/domains/retail/policy.md",
        "apigen_gym/domains/retail/db/orders.json",
        "apigen_gym/domains/retail/tasks/test.jsonl",
    ):
        assert expected in names, f"{expected} missing from the wheel"
    assert not any(n.startswith("domains/") for n in names), "domains must only ship as apigen_gym.domains"
    for domain in sorted(p.parent.name for p in (ROOT / "domains").glob("*/__init__.py")):
        for part in ("__init__.py", "tools.py", "policy.md", "tasks/test.jsonl"):
            assert f"apigen_gym/domains/{domain}/{part}" in names, f"{domain}/{part} missing from the wheel"
    for package in sorted(p.parent for p in (ROOT / "apigen_gym").rglob("__init__.py")):
        assert f"{package.relative_to(ROOT).as_posix()}/__init__.py" in names, (
            f"package {package.name} not shipped"
        )

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # a pure-Python wheel installs by unpacking
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = f"INSTALLED = {str(site)!r}\n" + CHECK
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=elsewhere,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok ")
