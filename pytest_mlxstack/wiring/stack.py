"""Pytest wiring for the stack area (options, fixtures, hooks). Kept thin: logic lives in the library."""
