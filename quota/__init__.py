"""Quotas (考核指标): the policy, the per-agent counters fed by CDRs, progress and reports.

``policy`` reads the versioned rule sets, ``periods`` maps instants to quota
days, weeks and months, ``counters`` counts CDRs exactly once per call id,
``exemptions`` decides exempt days, ``progress`` is the published value and
``report`` the end-of-day report.
"""
