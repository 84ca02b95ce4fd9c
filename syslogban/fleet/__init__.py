"""The fleet: several syslogban hosts sharing attacks and decisions in PostgreSQL.

One concept per file: schema (the tables, roles and functions, versioned),
decide (the pure fleet-wide decision, by the blocker), outbox (what waits in
the local state while the database is away), store (the SQL, psycopg 3 async)
and remote (the part the daemon plugs in, behind syslogban.remote.Remote).
"""
