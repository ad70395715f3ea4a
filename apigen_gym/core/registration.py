"""Gymnasium registration of every domain as ``apigen/<domain>-v0``."""

from __future__ import annotations

import gymnasium as gym

from apigen_gym.core.domain import DOMAIN_NAMES

ENV_IDS: dict[str, str] = {f"apigen/{name}-v0": name for name in DOMAIN_NAMES}


def register_envs() -> None:
    """Register every env id (idempotent)."""
    for env_id, domain in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="apigen_gym.core.env:ApigenEnv", kwargs={"domain": domain})
