"""How the loopback server is configured: its settings, its flags, and the loopback-only bind check.

Kept apart from the server itself so that building the command line does not load the HTTP stack.
"""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from apigen_gym.loopback.models import MODEL_HELP, MODEL_NAMES
from apigen_gym.util.argtypes import NON_NEGATIVE, NON_NEGATIVE_INT, PORT, SHARE

FAULT_HEADER = "X-Apigen-Fault"
LATENCY_HEADER = "X-Apigen-Latency"
DEFAULT_PORT = 8765
SHAPES: tuple[str, ...] = (
    "blank-content",
    "bare-ids",
    "args-object",
    "text-calls",
    "json-calls",
    "cut",
)
"""Answers shaped as real servers send them (see :mod:`apigen_gym.llm.shapes`): ``content: ""`` beside
tool calls, tool-call ids without ``call_``, ``arguments`` as an object, tool calls written as
``<tool_call>`` blocks or as a bare JSON object in ``content``, an answer cut at
``finish_reason: "length"``."""
FAULTS: tuple[str, ...] = ("429", "500", "timeout", "malformed", "empty", "unreadable", *SHAPES)
"""The faults the server can inject, by name (``--rate-<fault>``, or the fault header). ``unreadable``
is llama.cpp's 500 for a model output its parser cannot read."""
UNREADABLE_MESSAGE = "The model produced output that does not match the expected peg-native format"
"""llama.cpp's words for an answer its parser cannot read (answered with status 500)."""


def rate_field(fault: str) -> str:
    """The config field of a fault's rate: ``text-calls`` → ``rate_text_calls``."""
    return f"rate_{fault.replace('-', '_')}"


class ServerConfig(BaseModel):
    """How the loopback server behaves: latency, fault rates and the scripted models it serves."""

    model_config = ConfigDict(extra="forbid")

    latency: float = Field(0.0, ge=0, description="seconds before each answer")
    latency_jitter: float = Field(0.0, ge=0, description="latency is uniform in latency ± jitter (≥ 0)")
    rate_429: float = Field(0.0, ge=0, le=1, description="share of requests answered 429 at once")
    rate_500: float = Field(0.0, ge=0, le=1, description="share answered 500 after the latency")
    rate_timeout: float = Field(0.0, ge=0, le=1, description="share answered after timeout_sleep")
    rate_malformed: float = Field(0.0, ge=0, le=1, description="share with a tool call of broken JSON")
    rate_empty: float = Field(0.0, ge=0, le=1, description="share answered with choices: []")
    rate_unreadable: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share answered 500 as llama.cpp does when it cannot parse the model's output",
    )
    rate_blank_content: float = Field(0.0, ge=0, le=1, description='share with content "" beside tool calls')
    rate_bare_ids: float = Field(0.0, ge=0, le=1, description="share with tool-call ids without call_")
    rate_args_object: float = Field(0.0, ge=0, le=1, description="share with arguments as a JSON object")
    rate_text_calls: float = Field(0.0, ge=0, le=1, description="share with tool calls as <tool_call> text")
    rate_json_calls: float = Field(0.0, ge=0, le=1, description="share with tool calls as bare JSON text")
    rate_cut: float = Field(0.0, ge=0, le=1, description='share cut in half, finish_reason "length"')
    refuse_response_format: bool = Field(False, description="answer 400 to requests with response_format")
    slots: int = Field(0, ge=0, description="requests answered at once, the rest queue (0: no limit)")
    timeout_sleep: float = Field(30.0, ge=0, description="seconds a timeout fault waits before answering")
    retry_after_ms: int = Field(20, ge=0, description="retry-after-ms (and retry-after) of 429 answers")
    seed: int | None = Field(None, description="seed of the fault and jitter RNGs (None: random)")
    models: list[str] = Field(default_factory=lambda: list(MODEL_NAMES), description="models served")
    oracle_domain: str = Field("retail", description="domain of the plain oracle and scripted-user")
    oracle_data_dir: Path | None = Field(None, description="τ-bench-layout data folder for that domain")
    oracle_splits: list[str] | None = Field(None, description="splits to search (default: all)")

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: list[str]) -> list[str]:
        unknown = [m for m in models if m not in MODEL_NAMES]
        if unknown:
            raise ValueError(f"unknown model {unknown[0]!r} (known: {', '.join(MODEL_NAMES)})")
        return models

    @field_validator("oracle_data_dir")
    @classmethod
    def _existing_folder(cls, folder: Path | None) -> Path | None:
        if folder is not None and not folder.is_dir():
            raise ValueError(f"oracle_data_dir {folder}: no such folder")
        return folder

    @model_validator(mode="after")
    def _rates_fit(self) -> ServerConfig:
        if sum(self.rates().values()) > 1.0 + 1e-9:
            raise ValueError("the fault rates add up to more than 1")
        return self

    def rates(self) -> dict[str, float]:
        """The fault rates by fault name."""
        return {fault: float(getattr(self, rate_field(fault))) for fault in FAULTS}


def check_host(host: str, allow_remote: bool = False) -> None:
    """Refuse to bind anything but a loopback address unless ``allow_remote``."""
    if allow_remote or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"refusing to bind {host!r}: only loopback (127.0.0.1, ::1) unless allow_remote")


def base_url_of(host: str, port: int) -> str:
    """``http://HOST:PORT/v1`` (IPv6 hosts in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


DESCRIPTION = (
    "An OpenAI-compatible server on 127.0.0.1 answering with scripted models, with injected latency\n"
    'and faults.\n\nmodels (a request\'s "model"):\n'
    + "".join(f"  {name:<14} {text}\n" for name, text in MODEL_HELP.items())
    + "\noracle and scripted-user play the tasks of ONE domain, --oracle-domain (default retail);\n"
    "name another per request as oracle:<domain> or scripted-user:<domain> (e.g. oracle:travel)."
)
"""What ``serve-llm --help`` says above the flags."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's flags (shared with ``apigen-gym serve-llm``)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only by default)")
    parser.add_argument("--port", type=PORT, default=DEFAULT_PORT, help="port (0: any free port)")
    parser.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback host")
    parser.add_argument("--latency", type=NON_NEGATIVE, default=0.0, help="seconds before each answer")
    parser.add_argument("--latency-jitter", type=NON_NEGATIVE, default=0.0, help="latency ± this, uniformly")
    for fault in FAULTS:
        parser.add_argument(f"--rate-{fault}", type=SHARE, default=0.0, help=f"share of {fault} faults")
    parser.add_argument(
        "--refuse-response-format", action="store_true", help="answer 400 to requests with response_format"
    )
    parser.add_argument(
        "--slots", type=NON_NEGATIVE_INT, default=0, help="requests answered at once (0: no limit)"
    )
    parser.add_argument(
        "--timeout-sleep", type=NON_NEGATIVE, default=30.0, help="seconds a timeout fault waits"
    )
    parser.add_argument(
        "--retry-after-ms", type=NON_NEGATIVE_INT, default=20, help="retry-after-ms of 429 answers"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault RNG")
    parser.add_argument(
        "--models",
        default=",".join(MODEL_NAMES),
        help=f"comma-separated models to serve ({', '.join(MODEL_NAMES)})",
    )
    parser.add_argument(
        "--oracle-domain",
        default="retail",
        help="the one domain whose tasks the plain oracle and scripted-user models play (default: retail)",
    )
    parser.add_argument("--oracle-data-dir", default=None, help="τ-bench-layout data folder of that domain")
    parser.add_argument("--oracle-splits", default=None, help="comma-separated splits (default: all)")


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """A validated :class:`ServerConfig` from parsed flags."""
    return ServerConfig(
        latency=args.latency,
        latency_jitter=args.latency_jitter,
        timeout_sleep=args.timeout_sleep,
        retry_after_ms=args.retry_after_ms,
        seed=args.seed,
        models=[m.strip() for m in args.models.split(",") if m.strip()],
        oracle_domain=args.oracle_domain,
        oracle_data_dir=args.oracle_data_dir,
        oracle_splits=[s.strip() for s in args.oracle_splits.split(",")] if args.oracle_splits else None,
        refuse_response_format=args.refuse_response_format,
        slots=args.slots,
        **{rate_field(fault): getattr(args, rate_field(fault)) for fault in FAULTS},
    )
