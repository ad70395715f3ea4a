"""What every domain's seeded database generator shares: writing the tables and its command line."""

from __future__ import annotations

import argparse
import itertools
import random
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apigen_gym.util.jsonio import write_json

Tables = Mapping[str, Mapping[str, Any]]


@dataclass
class Draws:
    """A seeded random source that can also draw values unique across the whole database."""

    rng: random.Random
    used: set[str] = field(default_factory=set)

    def unique(self, draw: Callable[[], str]) -> str:
        """Call ``draw`` until it returns a string not used before; reserve it."""
        while True:
            candidate = draw()
            if candidate not in self.used:
                self.used.add(candidate)
                return candidate


def scaled(base: int, scale: float) -> int:
    """``base`` records times ``scale`` (at least one); ValueError unless ``scale`` is positive."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    return max(1, round(base * scale))


def copies(scale: float) -> int:
    """How many times a catalogue is laid out at ``scale``: ``round(scale)``, at least once.

    Catalogues grow with the database (so that scaled benchmarks exercise big catalogues) but never
    shrink below the shipped one: small test databases keep every product, route and hotel.
    """
    return scaled(1, scale)


def spare_codes(taken: Iterable[str], count: int) -> list[str]:
    """``count`` three-letter codes (AAA, AAB, ...) not in ``taken``, in order: airports of added regions."""
    used = set(taken)
    letters = string.ascii_uppercase
    codes = ("".join(c) for c in itertools.product(letters, repeat=3))
    return list(itertools.islice((c for c in codes if c not in used), count))


def write_tables(tables: Tables, out_dir: str | Path) -> list[Path]:
    """Write each table to ``out_dir/<table>.json`` (deterministic bytes, atomically); the paths."""
    paths = [Path(out_dir) / f"{name}.json" for name in tables]
    for path, table in zip(paths, tables.values()):
        write_json(path, table)
    return paths


def generator_main(
    description: str,
    generate: Callable[[int, float], Tables],
    default_seed: int,
    default_out: Path,
    scaled: str,
    argv: Sequence[str] | None = None,
) -> int:
    """``python -m apigen_gym.domains.<domain>.generator``: ``--seed``, ``--scale``, ``--out``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seed", type=int, default=default_seed, help="random seed (default: %(default)s)")
    parser.add_argument("--scale", type=float, default=1.0, help=f"multiplier for {scaled}")
    parser.add_argument("--out", type=Path, default=default_out, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    tables = generate(args.seed, args.scale)
    for path, table in zip(write_tables(tables, args.out), tables.values()):
        print(f"wrote {path} ({len(table)} records)")
    return 0
