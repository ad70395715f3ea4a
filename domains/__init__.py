"""The domains shipped with apigen-gym (imported as ``apigen_gym.domains``)."""
