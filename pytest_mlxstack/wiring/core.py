"""Pytest wiring for the core area (options, fixtures, hooks). Kept thin: logic lives in the library."""
