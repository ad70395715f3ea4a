"""apigen-gym: customer-service worlds as Gymnasium environments, APIGen-MT data and τ-bench evaluation.

Importing the package registers the environments (``apigen/retail-v0``, ...) with Gymnasium.
"""

from __future__ import annotations

from apigen_gym.registration import ENV_IDS, register_envs

__version__ = "0.1.0"
__all__ = ["ENV_IDS", "__version__", "register_envs"]

register_envs()
