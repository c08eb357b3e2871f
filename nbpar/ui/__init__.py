"""Displays of a run: listeners of the scheduler's events."""
