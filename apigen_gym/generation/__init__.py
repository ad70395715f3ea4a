"""APIGen-MT data generation: verified task blueprints (phase 1) and simulated dialogues (phase 2)."""
