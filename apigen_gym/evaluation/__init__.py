"""Scoring agents: the async runner, metrics (pass^k), the report and the leaderboard. Imports players, llm,
core and util.
"""
