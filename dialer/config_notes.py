"""What a valid configuration may still get wrong: codes that name no call result.

The quota policy and the effective-call rules name disposition codes; a code
no ``agent_policy.dispositions`` defines can never be set, so whatever counts
on it never moves. Not an error (a policy file may serve several floors, and
old CDRs may carry a retired code), but worth saying at ``check-config`` and
at start.
"""

from __future__ import annotations

from dialer.config import Config, quota_policy_path


def notes(config: Config) -> list[str]:
    from quota.policy import PolicyError, load_policy

    defined = {d.code for d in config.agent_policy.dispositions}
    found: list[str] = []
    path = quota_policy_path(config)
    try:
        policy = load_policy(path)
    except PolicyError:
        policy = None  # reported as a problem by validation
    if policy is not None:
        named = policy.dispositions
        for key, codes in (
            ("follow_up_worthy", named.follow_up_worthy),
            ("customer_records", named.customer_records),
        ):
            found.extend(
                f"quota policy {path}: dispositions.{key} names {code!r}, which no "
                "agent_policy.dispositions defines: no agent can set it"
                for code in sorted(codes - defined)
            )
    for rule in config.effective_rules:
        found.extend(
            f"effective_rules.{rule.name}.excluded_dispositions names {code!r}, which no "
            "agent_policy.dispositions defines: no agent can set it"
            for code in sorted(rule.excluded_dispositions - defined)
        )
    return found
