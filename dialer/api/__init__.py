"""The HTTP API: agents' desk, QA console, campaigns, CDRs, quotas and admin over the floor."""
