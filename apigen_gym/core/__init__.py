"""The world an agent lives in: database, tools, policy engine, task, actions, spaces, session, reward,
domain loading, the env and its registration. Imports only util.
"""
