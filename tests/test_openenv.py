"""``apigen-gym serve-env`` (OpenEnv's own server) driven by OpenEnv's own ``GenericEnvClient`` over
WebSocket: concurrent sessions play different tasks to reward 1, a malformed action is an error
observation and the session goes on, a client that disconnects frees its session."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from apigen_gym.core.domain import load_domain
from apigen_gym.players.oracle import OracleScript, Say

MAX_SESSIONS = 12


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "apigen_gym.cli",
        "serve-env",
        "--env",
        "apigen/retail-v0",
        "--port",
        str(port),
    ]
    process = subprocess.Popen(
        [*argv, "--max-sessions", str(MAX_SESSIONS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                    assert json.load(response)["status"] == "healthy"
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"serve-env did not start: {process.communicate()}") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def action(move: Any, short: bool) -> dict[str, Any]:
    """The oracle's move as an AssistantTurn payload (tool calls in both accepted forms)."""
    if isinstance(move, Say):
        return {"content": move.text}
    if short:
        return {"name": move.name, "arguments": move.arguments}
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": move.name, "arguments": json.dumps(move.arguments)},
    }
    return {"tool_calls": [call]}


async def play(url: str, task_index: int, malformed: bool = False) -> dict[str, Any]:
    from openenv import GenericEnvClient

    tools = load_domain("retail").tools
    async with GenericEnvClient(base_url=url) as client:
        result = await client.reset(task_index=task_index, seed=task_index)
        metadata = result.observation["metadata"]
        assert result.observation["text"] and not result.done and result.reward is None
        assert metadata["split"] == "test" and len(metadata["tools"]) == len(tools) and metadata["policy"]
        task = next(t for t in load_domain("retail").tasks("test") if t.id == metadata["task_id"])
        if malformed:
            bad = {"tool_calls": [{"name": "get_order_details", "arguments": "{not json"}]}
            result = await client.step(bad)
            assert result.observation["text"].startswith(
                "Error: arguments of get_order_details are not valid"
            )
            assert not result.done
            result = await client.step({"name": "no_such_tool", "arguments": {}})
            assert result.observation["text"] == "Error: unknown tool 'no_such_tool'" and not result.done
            with pytest.raises(RuntimeError, match="VALIDATION_ERROR"):
                await client.step({"bogus": 1})  # not an assistant turn: OpenEnv's own error frame
        script = OracleScript(task, tools)
        index, move = 0, script.next()
        while move is not None:
            result = await client.step(action(move, short=index % 2 == 0))
            index, move = index + 1, script.next(result.observation["text"])
            assert not result.done or move is None, move  # the customer may stop after the last
        if not result.done:
            result = await client.step({"content": "Goodbye! ###STOP###"})
        assert result.done
        state = await client.state()
        assert (
            state["task_id"] == task.id
            and state["done"]
            and state["termination"] in ("user_stop", "agent_stop")
        )
        return {
            "task": task.id,
            "reward": result.reward,
            "info": result.observation["metadata"]["reward_info"],
        }


def test_concurrent_sessions_play_different_tasks_to_reward_1(server: str) -> None:
    async def main() -> list[dict[str, Any]]:
        return await asyncio.gather(*(play(server, index) for index in range(0, 80, 8)))

    outcomes = asyncio.run(main())
    assert len({o["task"] for o in outcomes}) == 10
    for outcome in outcomes:
        assert outcome["reward"] == 1.0 and outcome["info"]["reward"] == 1.0, outcome


def test_a_malformed_action_is_an_error_observation_and_the_session_goes_on(server: str) -> None:
    outcome = asyncio.run(play(server, 3, malformed=True))
    assert outcome["reward"] == 1.0 and not outcome["info"]["violations"]


def test_a_client_that_disconnects_frees_its_session(server: str) -> None:
    import websockets

    ws_url = server.replace("http://", "ws://") + "/ws"

    async def main() -> None:
        held = []
        for _ in range(MAX_SESSIONS):  # every session taken
            ws = await websockets.connect(ws_url)
            await ws.send(json.dumps({"type": "reset", "data": {"task_index": 0}}))
            assert json.loads(await ws.recv())["type"] == "observation"
            held.append(ws)
        extra = await websockets.connect(ws_url)
        refused = json.loads(await extra.recv())
        assert refused["type"] == "error" and refused["data"]["code"] == "CAPACITY_REACHED"
        held[0].transport.abort()  # the client goes away without a close message
        deadline = time.monotonic() + 10
        while True:
            again = await websockets.connect(ws_url)
            await again.send(json.dumps({"type": "reset", "data": {"task_index": 1}}))
            reply = json.loads(await again.recv())
            if reply["type"] == "observation":
                break
            assert reply["data"]["code"] == "CAPACITY_REACHED" and time.monotonic() < deadline
            await asyncio.sleep(0.1)
        for ws in [*held[1:], again]:
            await ws.close()

    asyncio.run(main())


def test_serve_env_refuses_bad_arguments_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from apigen_gym.cli import main

    assert main(["serve-env", "--env", "apigen/retail-v0", "--host", "0.0.0.0"]) == 2
    assert main(["serve-env", "--env", "apigen/bank-v0"]) == 2
    assert main(["serve-env", "--env", "apigen/retail-v0", "--max-sessions", "0"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("apigen-gym: error: ") for line in lines)
