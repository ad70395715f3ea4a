"""The travel world: an agency that books whole trips (flights, hotels, cars) for saved travellers."""

from __future__ import annotations

from pathlib import Path

from apigen_gym.core.domain import Domain
from apigen_gym.core.policy import Policy
from apigen_gym.domains.travel.booking import TABLES
from apigen_gym.domains.travel.graph import API_GRAPH
from apigen_gym.domains.travel.rules import RULES
from apigen_gym.domains.travel.tools import TOOLS

HOME = Path(__file__).parent

DOMAIN = Domain(
    name="travel",
    tools=TOOLS,
    policy=Policy(text=(HOME / "policy.md").read_text(encoding="utf-8"), rules=RULES),
    tables=TABLES,
    home=HOME,
    version="1",
    api_graph=API_GRAPH,
)
