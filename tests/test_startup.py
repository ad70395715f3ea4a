"""Offline commands and ``import apigen_gym`` never load the model client's HTTP stack."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("openai", "aiohttp", "httpx", "httpx2")

PROBE = f"""
import json, sys
argv = json.loads(sys.argv[1])
if argv is None:
    import apigen_gym, apigen_gym.cli
    status = 0
else:
    from apigen_gym.cli import main
    status = main(argv)
print(json.dumps({{"status": status, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def probe(argv: list[str] | None, cwd: Path) -> dict[str, object]:
    """Run the command in a fresh interpreter; its exit status and which heavy modules it loaded."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True, cwd=cwd, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


ORACLE_EVAL = ["eval", "--env", "retail", "--agent", "oracle", "--tasks", "retail-test-000", "--out", "ev"]


@pytest.mark.parametrize(
    "argv",
    [None, ["envs"], ORACLE_EVAL, ["generate", "--domain", "airline", "-n", "2", "--out", "gen"]],
    ids=["import", "envs", "eval-oracle", "generate-offline"],
)
def test_offline_paths_do_not_import_the_http_stack(argv: list[str] | None, tmp_path: Path) -> None:
    assert probe(argv, tmp_path) == {"status": 0, "loaded": []}


def test_report_and_export_stay_light(tmp_path: Path) -> None:
    assert probe(["generate", "--domain", "retail", "-n", "2", "--out", "gen"], tmp_path)["status"] == 0
    assert probe(["export", "gen", "--format", "openai"], tmp_path) == {"status": 0, "loaded": []}
    assert probe(ORACLE_EVAL, tmp_path)["status"] == 0
    assert probe(["report", "ev"], tmp_path) == {"status": 0, "loaded": []}


def test_the_probe_sees_the_stack_when_a_model_path_loads_it(tmp_path: Path) -> None:
    code = PROBE.replace("import apigen_gym, apigen_gym.cli", "import apigen_gym.llm.client")
    done = subprocess.run([sys.executable, "-c", code, "null"], capture_output=True, text=True, cwd=tmp_path)
    assert {"openai", "aiohttp"} <= set(json.loads(done.stdout)["loaded"])
