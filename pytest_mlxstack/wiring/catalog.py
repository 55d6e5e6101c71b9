"""Pytest wiring for the catalog area (options, fixtures, hooks). Kept thin: logic lives in the library."""
