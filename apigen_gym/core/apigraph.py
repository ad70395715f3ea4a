"""API dependency graphs: which tool's output feeds which tool's input, walked at random.

Task samplers (and, later, APIGen-MT's context sampler) walk a domain's graph from the identification
tools towards write tools, so that every sampled task is a chain of calls whose arguments come from
earlier outputs.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Edge:
    """``source``'s output field ``produces`` is the ``consumes`` argument of ``target``."""

    source: str
    target: str
    produces: str
    consumes: str


class ApiGraph:
    """A directed graph of tools.

    ``forbidden`` holds ordered pairs ``(earlier, later)`` that the policy does not allow on the same
    record within one task (e.g. cancelling an order, then modifying it).
    """

    def __init__(self, edges: Iterable[Edge], forbidden: Iterable[tuple[str, str]] = ()):
        self.edges = tuple(edges)
        self.forbidden = frozenset(forbidden)
        self._out: dict[str, list[Edge]] = {}
        for edge in self.edges:
            self._out.setdefault(edge.source, []).append(edge)

    @property
    def nodes(self) -> list[str]:
        seen = dict.fromkeys(n for e in self.edges for n in (e.source, e.target))
        return list(seen)

    def successors(self, tool: str) -> list[Edge]:
        return list(self._out.get(tool, ()))

    def roots(self) -> list[str]:
        """Tools that no other tool feeds: where walks start."""
        targets = {e.target for e in self.edges}
        return [n for n in self.nodes if n not in targets]

    def path(self, source: str, target: str) -> list[Edge]:
        """A shortest chain of edges from ``source`` to ``target`` (empty when equal); ValueError if none."""
        if source == target:
            return []
        parents: dict[str, Edge] = {}
        queue = deque([source])
        while queue:
            node = queue.popleft()
            for edge in self._out.get(node, ()):
                if edge.target in parents or edge.target == source:
                    continue
                parents[edge.target] = edge
                if edge.target == target:
                    chain = [edge]
                    while chain[0].source != source:
                        chain.insert(0, parents[chain[0].source])
                    return chain
                queue.append(edge.target)
        raise ValueError(f"no path from {source} to {target}")

    def walk(
        self,
        rng: random.Random,
        start: str,
        weight: Callable[[str, str], float] | None = None,
        stop: Callable[[str], float] | None = None,
    ) -> list[str]:
        """A random walk from ``start``: the tools it visits, in order, none twice.

        Each step follows an edge to a tool not yet visited and not forbidden after the current one,
        chosen with probability proportional to ``weight(source, target)`` (uniform by default). After
        the first step the walk ends at a tool with probability ``stop(tool)``, or where it cannot go on.
        """
        path = [start]
        while True:
            node = path[-1]
            if len(path) > 1 and stop is not None and rng.random() < stop(node):
                return path
            targets = list(dict.fromkeys(e.target for e in self._out.get(node, ())))
            targets = [t for t in targets if t not in path and (node, t) not in self.forbidden]
            if not targets:
                return path
            weights = [weight(node, t) for t in targets] if weight is not None else None
            path.append(rng.choices(targets, weights)[0])

    def allows(self, sequence: Iterable[str]) -> bool:
        """Whether no tool of ``sequence`` follows a tool it is forbidden after (any earlier one)."""
        names = list(sequence)
        return all((a, b) not in self.forbidden for i, b in enumerate(names) for a in names[:i])
