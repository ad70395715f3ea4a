"""APIGen-MT data generation: verified task blueprints (phase 1), simulated dialogues (phase 2), export.
Imports evaluation, players, kit, llm, core and util.
"""
