"""The crash harness (harness.py), its actor (actor.py) and its runner (python -m tests.crash)."""
