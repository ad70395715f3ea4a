"""An OpenAI-compatible server on 127.0.0.1 that plays scripted models with injected faults, for tests and
benchmarks. Imports players, core, llm and util.
"""
