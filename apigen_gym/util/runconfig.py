"""A run folder bound to the settings that decide what it holds (``RUN/config.json``).

The first run saves its settings; a later run on the same folder resumes only when the settings that
decide the output are the same, and is otherwise refused with every difference named. Generation runs
and evaluation folders both go through :func:`bind`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from apigen_gym.util.jsonio import read_json, write_json

CONFIG_FILE = "config.json"

Settings = Mapping[str, Any]


class RunFolderError(ValueError):
    """The folder cannot take this run: the message says why, in one line."""


class SettingsMismatch(RunFolderError):
    """The folder holds a run made with settings that decide the output differently."""

    def __init__(self, folder: str | os.PathLike[str], changed: list[str]):
        self.folder = Path(folder)
        self.changed = changed
        super().__init__(
            f"{self.folder} holds a run made with other settings, so it cannot be resumed with these: "
            + "; ".join(changed)
            + ". Use a new output folder, or the run's own settings to resume it."
        )


def differences(old: Settings, new: Settings, prefix: str = "") -> list[str]:
    """``key: old → new`` for every setting that differs, nested keys dotted.

    A setting the old run did not record (it predates that setting) is not compared.
    """
    out = []
    for key in sorted(old):
        a, b = old[key], new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} → {b!r}")
    return out


def check(
    folder: str | os.PathLike[str],
    settings: Settings,
    deciding: Callable[[Settings], Settings] = dict,
) -> None:
    """Raise :class:`SettingsMismatch` (naming every difference) if ``folder`` holds a run whose
    settings decide the output differently; writes nothing.

    ``deciding`` picks what in a settings record decides the output (the rest, such as concurrency or
    a server address, may change between runs).
    """
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return
    try:
        previous = read_json(path)
    except ValueError as exc:  # not JSON, not UTF-8
        raise RunFolderError(f"{path} is unreadable ({type(exc).__name__}): use a new folder") from None
    if not isinstance(previous, dict):
        raise RunFolderError(f"{path} is not a settings record: use a new output folder")
    changed = differences(deciding(previous), deciding(settings))
    if changed:
        raise SettingsMismatch(folder, changed)


def bind(
    folder: str | os.PathLike[str],
    settings: Settings,
    deciding: Callable[[Settings], Settings] = dict,
) -> None:
    """:func:`check`, then save ``settings`` in ``folder/config.json`` (the latest run's, runtime
    settings included)."""
    check(folder, settings, deciding)
    write_json(Path(folder) / CONFIG_FILE, settings)
