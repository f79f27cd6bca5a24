"""Lead lists: phone-number normalisation (``phone``) and CSV/Excel import (``csv_import``).

Pure logic: bytes and strings in, frozen dataclasses out. Committing an import
to the campaign's tables is the caller's job; see ``csv_import.ImportReport``
for the all-or-nothing rule.
"""
