"""Adapters to other people's frameworks (RL trainers, env servers, cluster engines), each behind an optional
extra and imported lazily. May import every other room.
"""
