"""The built-in user simulators by name: ``scripted`` (offline) and ``llm`` (a model plays the customer)."""

from __future__ import annotations

from apigen_gym.core.user import UserSimulator, register_user
from apigen_gym.players.scripted_user import ScriptedUser


def scripted_user(
    user_model: str | None = None, base_url: str | None = None, user_best_of: int = 1
) -> UserSimulator:
    """The offline user, which takes no model options (they would be silently ignored)."""
    given = {
        "user_model": user_model is not None,
        "base_url": base_url is not None,
        "user_best_of": user_best_of != 1,
    }
    ignored = [name for name, present in given.items() if present]
    if ignored:
        raise ValueError(f"user='scripted' plays offline and takes no {', '.join(ignored)}: use user='llm'")
    return ScriptedUser()


def llm_user(
    user_model: str | None = None, base_url: str | None = None, user_best_of: int = 1
) -> UserSimulator:
    """An LLM user (best-of-N with a critic when ``user_best_of`` > 1), with a client of its own that
    :meth:`~UserSimulator.close` closes; the model stack loads only here."""
    from apigen_gym.llm.client import LLMClient
    from apigen_gym.llm.settings import LLMSettings
    from apigen_gym.players.llm_users import BestOfNUser, LLMUser

    client = LLMClient(LLMSettings.from_env(model=user_model, base_url=base_url, model_option="user_model="))
    if user_best_of > 1:
        return BestOfNUser(client, n=user_best_of, owns_client=True)
    return LLMUser(client, owns_client=True)


def register_builtin_users() -> None:
    register_user("scripted", scripted_user)
    register_user("llm", llm_user)
