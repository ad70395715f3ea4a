"""API dependency graphs: which tool's output feeds which tool's input, walked at random.

Task samplers (and, later, APIGen-MT's context sampler) walk a domain's graph from the identification
tools towards write tools, so that every sampled task is a chain of calls whose arguments come from
earlier outputs.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Edge:
    """``source``'s output field ``produces`` is the ``consumes`` argument of ``target``."""

    source: str
    target: str
    produces: str
    consumes: str


class ApiGraph:
    """A directed graph of tools; ``forbidden`` pairs may never follow one another in a task."""

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

    def walk(self, rng: random.Random, start: str, max_steps: int) -> list[Edge]:
        """A random walk of up to ``max_steps`` edges from ``start``, never taking a forbidden pair."""
        walked: list[Edge] = []
        node = start
        for _ in range(max_steps):
            options = [e for e in self._out.get(node, ()) if (node, e.target) not in self.forbidden]
            if not options:
                break
            edge = options[rng.randrange(len(options))]
            walked.append(edge)
            node = edge.target
        return walked

    def allows(self, sequence: Iterable[str]) -> bool:
        """Whether no two consecutive tools of ``sequence`` form a forbidden pair."""
        names = list(sequence)
        return all((a, b) not in self.forbidden for a, b in zip(names, names[1:]))
