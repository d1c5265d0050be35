"""Runnable examples; the test suite executes each against FakeCronofy."""
