"""Tools every conversational domain shares: a calculator, a scratchpad and the hand-over to a human."""

from __future__ import annotations

from apigen_gym.core.database import Fork
from apigen_gym.core.tools import ToolKind, tool
from apigen_gym.kit import arithmetic


@tool(ToolKind.READ)
def calculate(db: Fork, expression: str) -> str:
    """Evaluate an arithmetic expression, such as a sum of prices; the result is rounded to 2 decimals.

    Args:
        expression: numbers, parentheses, spaces and the operators + - * /, e.g. "2 * (3.5 + 4)".
    """
    return arithmetic.calculate(expression)


@tool(ToolKind.READ)
def think(db: Fork, thought: str) -> str:
    """Think out loud: nothing is looked up or changed. Use it to plan or to check reasoning.

    Args:
        thought: the thought.
    """
    return ""


@tool(ToolKind.TERMINAL)
def transfer_to_human_agents(db: Fork, summary: str) -> str:
    """Hand the user over to a human agent, with a summary of the issue. Only for requests out of scope.

    Args:
        summary: what the user wants and what has been done so far.
    """
    return "Transfer successful"
