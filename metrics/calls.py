"""Which campaign and trunk a call belongs to, for the short life of the call.

Only ``CallAssigned`` names a call's campaign and trunk; the events after it
(answer, bridge, end) carry just the call id. So the metrics keep a small map
from call id to those labels, filled at ``CallAssigned`` and emptied at the
call's ``CallEnded``. The call id is a key here and never a label.

The map is bounded: a call whose end never arrives (an event lost upstream)
must not grow memory for ever. When full, the oldest call is dropped and
reported to the caller, which counts it, so a lost end is visible rather than
silent.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass

from metrics.errors import MetricsError

DEFAULT_MAX_CALLS = 20_000


@dataclass(frozen=True, slots=True)
class CallLabels:
    campaign: str
    trunk: str
    # The call reached its trunk: an inbound call came in on it, or an outbound
    # INVITE left (a per-call agent's customer waits for the desk phone to answer).
    reached: bool = False


class CallLabelMap:
    """call id -> (campaign, trunk), oldest first, at most ``max_calls`` entries."""

    def __init__(self, max_calls: int = DEFAULT_MAX_CALLS) -> None:
        if max_calls < 1:
            raise MetricsError("call label map", [f"max_calls must be at least 1, got {max_calls}"])
        self._max = max_calls
        self._calls: OrderedDict[str, CallLabels] = OrderedDict()

    def __len__(self) -> int:
        return len(self._calls)

    def get(self, call_id: str) -> CallLabels | None:
        return self._calls.get(call_id)

    def add(self, call_id: str, labels: CallLabels) -> list[CallLabels]:
        """Track a new call; returns the oldest calls dropped to make room for it.

        A call id already tracked must be ``pop``-ped first, so that whatever
        the caller keeps per campaign is given back exactly once.
        """
        if call_id in self._calls:
            raise MetricsError("call label map", [f"call {call_id!r} is already tracked"])
        self._calls[call_id] = labels
        evicted: list[CallLabels] = []
        while len(self._calls) > self._max:
            evicted.append(self._calls.popitem(last=False)[1])
        return evicted

    def reach(self, call_id: str) -> None:
        """The call's INVITE left on its trunk (a call not tracked is let be)."""
        labels = self._calls.get(call_id)
        if labels is not None:
            self._calls[call_id] = dataclasses.replace(labels, reached=True)

    def pop(self, call_id: str) -> CallLabels | None:
        return self._calls.pop(call_id, None)
