"""The metrics package's errors: one base, so callers can tell our misuse from a bug.

``MetricsError`` is a local error: the caller handed in something the package
refuses (a negative duration, a dial level that is not a number). The message
names every problem found, so one fix is enough.
"""

from __future__ import annotations


class MetricsError(ValueError):
    """A value handed to the metrics package was refused; the message says which and why."""

    def __init__(self, what: str, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(f"{what}: " + "; ".join(problems))
