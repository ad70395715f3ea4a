"""Who plays each side: the agent interface, the oracle, random and model agents; the scripted and LLM users.
Imports core, llm and util.
"""

from apigen_gym.players.user_factories import register_builtin_users

register_builtin_users()
