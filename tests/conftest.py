"""The plugin's own tests.

CI on Linux sets ``MLXSTACK_REQUIRE_STACK=1`` (scripts/run-tests.sh, ci.yml): the plugin's
``--mlx-require-stack`` then fails a test skipped because the real stack is missing, so CI
cannot go green with every real-stack test skipped (tests/stack/test_require_stack.py).
"""
