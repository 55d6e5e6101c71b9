"""Small real HTTP servers the lifecycle tests start as separate processes."""
