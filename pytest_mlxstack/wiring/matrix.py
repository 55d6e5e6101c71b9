"""Pytest wiring for the matrix area (options, fixtures, hooks). Kept thin: logic lives in the library."""
