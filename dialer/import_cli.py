"""``dialer import-leads``: a lead file into a configured campaign, all or nothing."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path

from dialer.config import Config
from dialer.leads.csv_import import ImportReport, import_leads
from dialer.store.database import Database
from dialer.store.leads import LeadStore
from dialer.store.models import StoreError


async def import_file(
    config: Config, campaign_id: str, path: Path, *, accept_valid: bool
) -> tuple[int, ImportReport | None, str]:
    """(exit code, the row report, what happened) for importing ``path``.

    A file-level problem refuses the whole file; invalid rows refuse it too
    unless ``accept_valid``, in which case only the valid rows go in. Either
    way the insert is one transaction: nothing is ever half-imported.
    """
    campaign = next((c for c in config.campaigns if c.id == campaign_id), None)
    if campaign is None:
        known = ", ".join(c.id for c in config.campaigns) or "none configured"
        return 2, None, f"unknown campaign {campaign_id!r} (known: {known})"
    data = await asyncio.to_thread(path.read_bytes)
    report = import_leads(data)
    if not report.importable:
        return 2, report, "refused: the file cannot be imported"
    if report.invalid_rows and not accept_valid:
        return 1, report, "refused: fix the rows above, or pass --accept-valid to import the rest"
    now = datetime.now(UTC)
    async with Database(config.database.url) as database:
        await database.upgrade()
        store = LeadStore(database)
        with contextlib.suppress(StoreError):  # it exists from an earlier import
            await store.create_campaign(
                campaign.id, campaign.name or campaign.id, campaign.mode, campaign.timezone, now=now
            )
        try:
            inserted = await store.import_report(campaign.id, report, now=now)
        except StoreError as exc:
            return 2, report, f"refused, nothing imported: {exc}"
    return 0, report, f"imported {inserted} leads into campaign {campaign.id!r}"


def render(report: ImportReport | None, message: str) -> str:
    lines = []
    if report is not None:
        lines.append(report.summary())
        for problem in (
            *report.file_errors,
            *report.errors,
            *report.duplicates,
            *report.do_not_call,
        ):
            lines.append(f"  {problem}")
        lines.extend(f"  warning: {warning}" for warning in report.warnings)
    lines.append(message)
    return "\n".join(lines)
