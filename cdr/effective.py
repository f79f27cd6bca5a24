"""The effective-call rule: explicit, versioned, and the same everywhere it is used.

An effective call (有效通话) is a connected conversation that meets the rule.
The CDR stores the verdict and the rule's ``name@version``; quotas and reports
count that verdict and never judge a call again, so changing a rule changes
new CDRs only and never rewrites history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .record import AnsweredBy


class RuleError(ValueError):
    """A rule definition that cannot be used; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class EffectiveRule:
    name: str = "default"
    version: int = 1
    min_talk_s: float = 30.0  # the seeds' example: at least 30 s with a live person
    live_person_required: bool = True  # a machine answer never counts
    min_customer_speech_s: float = 0.0  # 0: voice activity is not looked at
    excluded_dispositions: frozenset[str] = field(default_factory=frozenset)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def judge(
        self,
        *,
        talk_ms: int,
        answered_by: AnsweredBy,
        customer_speech_ms: int | None,
        disposition: str | None,
    ) -> bool:
        """Whether a bridged call counts; ``customer_speech_ms`` None: no recording."""
        if talk_ms < self.min_talk_s * 1000:
            return False
        if self.live_person_required and answered_by is AnsweredBy.MACHINE:
            return False
        if self.min_customer_speech_s > 0 and (
            customer_speech_ms is None or customer_speech_ms < self.min_customer_speech_s * 1000
        ):
            return False
        return disposition is None or disposition not in self.excluded_dispositions

    @classmethod
    def from_mapping(cls, name: str, raw: Mapping[str, Any]) -> EffectiveRule:
        """A rule from its TOML table; every problem is named, not just the first."""
        known = {
            "version",
            "min_talk_s",
            "live_person_required",
            "min_customer_speech_s",
            "excluded_dispositions",
        }
        where = f"effective_rules.{name}"
        problems = [f"{where}: unknown key {k!r}" for k in sorted(set(raw) - known)]
        version = raw.get("version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            problems.append(f"{where}.version: {version!r} is not a whole number ≥ 1")
        numbers: dict[str, float] = {}
        for key, default in (("min_talk_s", 30.0), ("min_customer_speech_s", 0.0)):
            value = raw.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                problems.append(f"{where}.{key}: {value!r} is not a number ≥ 0")
            else:
                numbers[key] = float(value)
        live = raw.get("live_person_required", True)
        if not isinstance(live, bool):
            problems.append(f"{where}.live_person_required: {live!r} is not true/false")
        excluded = raw.get("excluded_dispositions", [])
        if not isinstance(excluded, list) or not all(isinstance(c, str) for c in excluded):
            problems.append(
                f"{where}.excluded_dispositions: {excluded!r} is not a list of codes"
            )
            excluded = []
        if problems:
            raise RuleError("; ".join(problems))
        return cls(
            name=name,
            version=version,
            min_talk_s=numbers["min_talk_s"],
            live_person_required=live,
            min_customer_speech_s=numbers["min_customer_speech_s"],
            excluded_dispositions=frozenset(excluded),
        )


DEFAULT_RULE = EffectiveRule()
