"""One agent's quota progress for one day: what MQTT, the metrics and the API publish.

A ``QuotaProgress`` is produced on every change of an agent's day (a CDR
counted, an exemption approved, the agent's availability changed). It is a
complete picture, not a delta, so a subscriber that missed one keeps the
latest and is right again. Counts are exact (talk time in milliseconds; the
``talk_minutes`` count is derived from it); targets are the day's targets
after pro-rating and exemption; ``shortfall`` is what is still missing
(never negative) and ``attainment`` is count / target per target (1.0 for a
target of 0), with ``overall`` the weakest of them.

The JSON envelope follows the domain events': ``schema`` and ``kind`` first.
Adding a field is allowed; renaming or changing one's meaning needs a new
``PROGRESS_SCHEMA``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any, ClassVar

PROGRESS_SCHEMA = 1

# Count names, in the order reports show them. Targets use the same names.
COUNTS = (
    "dials",
    "connects",
    "effective_calls",
    "talk_ms",
    "talk_minutes",
    "follow_up_customers",
    "customer_records",
    "new_customer_calls",
    "follow_up_calls",
)


def attainment_of(count: float, target: float) -> float:
    return 1.0 if target <= 0 else count / target


def _frozen(values: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaProgress:
    kind: ClassVar[str] = "quota_progress"
    schema: int = PROGRESS_SCHEMA
    agent: str
    team: str | None
    day: date
    counts: Mapping[str, float]
    targets: Mapping[str, float]
    rules: tuple[str, ...] = ()  # "name@version" of the rule set versions in force
    tiers: tuple[str, ...] = ()
    exempt: bool = False
    available_fraction: float = 1.0
    shortfall: Mapping[str, float] = field(init=False)
    attainment: Mapping[str, float] = field(init=False)

    def __post_init__(self) -> None:
        counts, targets = _frozen(self.counts), _frozen(self.targets)
        missing = sorted(set(targets) - set(counts))
        if missing:
            raise ValueError(f"QuotaProgress: targets {missing} have no count")
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "targets", targets)
        object.__setattr__(
            self,
            "shortfall",
            _frozen({k: max(0.0, t - counts[k]) for k, t in targets.items()}),
        )
        object.__setattr__(
            self,
            "attainment",
            _frozen({k: attainment_of(counts[k], t) for k, t in targets.items()}),
        )

    @property
    def overall(self) -> float:
        """The weakest target's attainment; 1.0 when the day has no target."""
        return min(self.attainment.values(), default=1.0)

    @property
    def met(self) -> bool:
        return all(s == 0 for s in self.shortfall.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "kind": self.kind,
            "agent": self.agent,
            "team": self.team,
            "day": self.day.isoformat(),
            "rules": list(self.rules),
            "tiers": list(self.tiers),
            "exempt": self.exempt,
            "available_fraction": self.available_fraction,
            "counts": dict(self.counts),
            "targets": dict(self.targets),
            "shortfall": dict(self.shortfall),
            "attainment": dict(self.attainment),
            "overall": self.overall,
            "met": self.met,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))
