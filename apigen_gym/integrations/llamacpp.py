"""llama.cpp's own OpenAI-compatible HTTP server, through the prebuilt ``xllamacpp`` wheel.

Installed with the ``llamacpp`` extra (and ``dev``).

The server runs in a child process (llama.cpp installs its own signal handlers and C++ threads), on
127.0.0.1 with a port of its choosing, with jinja enabled and this project's tool-calling chat
template (:data:`TEMPLATE`): ChatML with the tools' schemas in the system turn and Hermes-style
``<tool_call>`` blocks, from which the server fills ``tool_calls``. A model's own template may not
know tools at all (then the server silently drops them).

From Python (tests, benchmarks)::

    with LlamaCppServer("SmolLM2-135M-Instruct.Q4_1.gguf") as server:
        settings = LLMSettings(model="smollm2", base_url=server.base_url, max_in_flight=server.slots)

From a shell: ``python -m apigen_gym.integrations.llamacpp MODEL.gguf --port 8080`` serves until
Ctrl-C; ``--write-template FILE`` writes the chat template, for llama.cpp's own ``llama-server
--jinja --chat-template-file FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from apigen_gym.util.processes import READY_PREFIX, wait_ready

TEMPLATE = "chatml_tools.jinja"


def chat_template() -> str:
    """The project's tool-calling ChatML template (jinja)."""
    return (resources.files(__package__) / "templates" / TEMPLATE).read_text(encoding="utf-8")


@dataclass
class LlamaCppServer:
    """llama.cpp's server on a GGUF model, in a child process; a context manager.

    ``threads``: CPU threads for generation and prompt processing (one, when other work shares the
    machine: two threads on a busy core are much slower). ``slots``: requests decoded at once, each
    with a ``context``-token window; more queue in the server.
    """

    model: str | Path
    threads: int = 1
    slots: int = 1
    context: int = 8192
    alias: str = "local"
    start_timeout: float = 120.0
    log: Path | None = None
    """Where the server's own log goes (default: discarded)."""
    base_url: str = field(default="", init=False)
    _process: subprocess.Popen[str] | None = field(default=None, init=False, repr=False)

    def command(self) -> list[str]:
        """The child's command line."""
        return [
            sys.executable,
            "-m",
            __name__,
            str(self.model),
            "--port",
            "0",
            "--threads",
            str(self.threads),
            "--slots",
            str(self.slots),
            "--context",
            str(self.context),
            "--alias",
            self.alias,
            "--exit-with-stdin",
        ]

    def start(self) -> LlamaCppServer:
        """Start the server; returns once it answers (the model is loaded)."""
        if self._process is not None:
            raise RuntimeError("the server is already running")
        if not Path(self.model).is_file():
            raise FileNotFoundError(f"no model file at {self.model}")
        log = open(self.log, "a", encoding="utf-8") if self.log else subprocess.DEVNULL  # noqa: SIM115
        try:
            process = subprocess.Popen(
                self.command(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                bufsize=1,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()  # type: ignore[union-attr]
        self._process = process
        try:
            self.base_url = wait_ready(process, self.start_timeout, "llama.cpp's server")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: its stdin closes, it exits (killed if it does not within ``timeout``)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        root = self.base_url.removesuffix("/v1")
        request = urllib.request.Request(
            root + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.start_timeout) as answer:
            return json.loads(answer.read())

    def prompt_tokens(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """The tokens ``messages`` take as a prompt on this server: its chat template, then its
        tokenizer (llama.cpp's ``/apply-template`` and ``/tokenize``)."""
        prompt = self._post("/apply-template", {"messages": list(messages)})["prompt"]
        return len(self._post("/tokenize", {"content": prompt})["tokens"])

    def __enter__(self) -> LlamaCppServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --- the child ------------------------------------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    """Start llama.cpp's server in this process and keep it until SIGINT/SIGTERM (or stdin closes)."""
    import xllamacpp

    wanted = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, wanted)  # the server's threads inherit it: we wait for them
    params = xllamacpp.CommonParams()
    params.model.path = str(args.model)
    params.model_alias = {args.alias}
    params.hostnames = [args.host]
    params.port = args.port
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.n_parallel = args.slots
    params.n_ctx = args.context * args.slots
    params.use_jinja = True
    params.chat_template = chat_template()
    params.endpoint_metrics = True
    params.warmup = False
    params.verbosity = 1 if args.quiet else 3
    server = xllamacpp.Server(params)
    print(f"{READY_PREFIX}{server.listening_address.rstrip('/')}/v1", flush=True)
    if args.exit_with_stdin:
        threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    signal.sigwait(wanted)
    os._exit(0)  # the server's threads end with the process


def _exit_when_stdin_closes() -> None:
    """The parent stopped the server, or died: end the process with it."""
    sys.stdin.read()
    os._exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m apigen_gym.integrations.llamacpp",
        description="llama.cpp's OpenAI-compatible server on a GGUF model, with a tool-calling template.",
    )
    parser.add_argument("model", nargs="?", help="the GGUF model file")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--slots", type=int, default=1, help="requests decoded at once (default 1)")
    parser.add_argument("--context", type=int, default=8192, help="context tokens per slot (default 8192)")
    parser.add_argument("--alias", default="local", help="the model name the server reports")
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument("--exit-with-stdin", action="store_true", help="exit when standard input closes")
    parser.add_argument("--write-template", metavar="FILE", help="write the chat template to FILE and exit")
    args = parser.parse_args(argv)
    if args.write_template:
        Path(args.write_template).write_text(chat_template(), encoding="utf-8")
        print(f"wrote {args.write_template}")
        return 0
    if not args.model or not Path(args.model).is_file():
        parser.error(f"no model file at {args.model}" if args.model else "give the GGUF model file")
    for name in ("threads", "slots", "context"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    serve(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
