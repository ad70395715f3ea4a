"""Talking to models: settings, the client (retries, labels, usage, cost, cache) and its transports. Imports
util (and core never imports it).
"""
