"""The dialer's storage: campaigns, leads, dial attempts and do-not-call lists.

- ``models``: the SQLAlchemy 2 typed tables (one ``Base``, one naming
  convention) and ``UTCDateTime``, which refuses naive datetimes and always
  reads back aware UTC.
- ``database``: ``Database(url)``, the async engine and sessions (SQLite
  pragmas on every connection) and ``upgrade()`` to the Alembic head.
- ``leads``: ``LeadStore``, the queries the campaign runner needs: import a
  report in one transaction, list dialable candidates, claim a lead so that
  two dialers never ring it, record attempts and apply retry decisions.

The schema is owned by the Alembic history in ``migrations/``; the models
must match it (a test compares them).
"""
