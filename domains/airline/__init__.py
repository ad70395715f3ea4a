"""The airline world: a carrier's customer service, with τ-bench's exact tools."""

from __future__ import annotations

from pathlib import Path

from apigen_gym.core.domain import Domain
from apigen_gym.core.policy import Policy
from apigen_gym.domains.airline.graph import API_GRAPH
from apigen_gym.domains.airline.rules import RULES
from apigen_gym.domains.airline.tools import TOOLS

HOME = Path(__file__).parent

DOMAIN = Domain(
    name="airline",
    tools=TOOLS,
    policy=Policy(text=(HOME / "policy.md").read_text(encoding="utf-8"), rules=RULES),
    tables=("flights", "reservations", "users"),
    home=HOME,
    version="1",
    api_graph=API_GRAPH,
)
