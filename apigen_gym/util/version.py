"""The package version (the one place it is written; ``pyproject.toml`` reads it)."""

VERSION = "0.1.0"
