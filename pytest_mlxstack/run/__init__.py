"""Run orchestration for the built-in suites, usable without pytest: which catalog targets a
run selects, the one stack they share, and how a probe's verdict becomes a matrix cell."""
