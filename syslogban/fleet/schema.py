"""The fleet's schema in PostgreSQL: versioned migrations, roles and grants.

Rules of this file:
* MIGRATIONS only grows: a migration that landed is never edited; `fleet
  init` applies the missing ones in order, in one transaction, under an
  advisory lock (two inits at once do the work once). Running it again
  changes nothing.
* Hosts never write tables: they call SECURITY DEFINER functions that stamp
  every row with session_user, so a host cannot write in another's name.
  EXECUTE is revoked from PUBLIC and granted to the group roles:
  syslogban_host (every host: observe, decide, read) and syslogban_unblock
  (the right to lift a block fleet-wide).
* The decision log is append-only (a revocation is a row too), and rows
  commit in id order (decide and revoke take one lock for the insert and
  keep it to the commit), so "rows after my cursor" never skips a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

NOTIFY_CHANNEL = "syslogban_decisions"
ROLES = ("syslogban_host", "syslogban_unblock")

MIGRATIONS: tuple[str, ...] = (
    # 1: hosts, events, decisions, offenders, the central allow-list; the functions
    """
    DO $roles$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'syslogban_host') THEN
            CREATE ROLE syslogban_host NOLOGIN;
        END IF;
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'syslogban_unblock') THEN
            CREATE ROLE syslogban_unblock NOLOGIN;
        END IF;
    END $roles$;

    CREATE TABLE syslogban.hosts (
        name         text PRIMARY KEY,            -- the host's role: session_user
        first_seen   timestamptz NOT NULL DEFAULT now(),
        last_contact timestamptz NOT NULL DEFAULT now(),
        last_seq     bigint NOT NULL DEFAULT 0,   -- highest event sequence received
        backlog      bigint NOT NULL DEFAULT 0    -- its outbox, as it last said
    );
    CREATE TABLE syslogban.events (
        host      text NOT NULL,
        seq       bigint NOT NULL,
        addr      inet NOT NULL,
        signature text NOT NULL,
        service   text NOT NULL,
        danger    integer NOT NULL CHECK (danger BETWEEN 0 AND 1000000),
        at        timestamptz NOT NULL,
        PRIMARY KEY (host, seq)
    );
    CREATE INDEX events_addr_at ON syslogban.events (addr, at);
    CREATE TABLE syslogban.offenders (      -- lifetime danger, for the blacklist
        target   inet PRIMARY KEY,
        lifetime bigint NOT NULL
    );
    CREATE TABLE syslogban.decisions (
        id         bigserial PRIMARY KEY,
        target     cidr NOT NULL,
        since      timestamptz NOT NULL DEFAULT now(),
        until      timestamptz,                  -- NULL: permanent
        origin     text NOT NULL,                -- the host that decided (or revoked)
        reason     text NOT NULL,
        revoked    boolean NOT NULL DEFAULT false,
        score      integer NOT NULL DEFAULT 0,
        signatures text[] NOT NULL DEFAULT '{}',
        nth        integer NOT NULL DEFAULT 1,
        lifetime   bigint NOT NULL DEFAULT 0,
        evidence   text[] NOT NULL DEFAULT '{}'
    );
    CREATE INDEX decisions_target_id ON syslogban.decisions (target, id);
    CREATE INDEX decisions_cover ON syslogban.decisions USING gist (target inet_ops);
    CREATE TABLE syslogban.allowlist (
        net  cidr PRIMARY KEY,
        note text NOT NULL DEFAULT ''
    );

    -- The last row of each target, when it is a block still in force.
    CREATE VIEW syslogban.active AS
        SELECT * FROM (SELECT DISTINCT ON (target) * FROM syslogban.decisions
                       ORDER BY target, id DESC) last
        WHERE NOT revoked AND (until IS NULL OR until > now());

    -- Per-target locks, taken in one order by every host: no deadlock.
    CREATE FUNCTION syslogban.lock_targets(targets cidr[]) RETURNS void
    LANGUAGE plpgsql AS $f$
    DECLARE
        k bigint;
    BEGIN
        FOR k IN SELECT DISTINCT hashtextextended(t::text, 0) FROM unnest(targets) t
                 ORDER BY 1 LOOP
            PERFORM pg_advisory_xact_lock(k);
        END LOOP;
    END
    $f$;

    CREATE FUNCTION syslogban.observe(
        p_seq bigint[], p_addr inet[], p_signature text[], p_service text[],
        p_danger integer[], p_at timestamptz[], p_backlog bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = syslogban, pg_temp AS $f$
    DECLARE
        inserted bigint;
    BEGIN
        INSERT INTO hosts AS h (name, last_seq, backlog)
            VALUES (session_user, coalesce((SELECT max(s) FROM unnest(p_seq) s), 0), p_backlog)
            ON CONFLICT (name) DO UPDATE SET last_contact = now(), backlog = excluded.backlog,
                last_seq = greatest(h.last_seq, excluded.last_seq);
        WITH new AS (
            INSERT INTO events (host, seq, addr, signature, service, danger, at)
                SELECT session_user, * FROM unnest(p_seq, p_addr, p_signature, p_service,
                                                   p_danger, p_at)
                ON CONFLICT DO NOTHING
                RETURNING addr, danger),
        per_address AS (SELECT addr, sum(danger) AS danger FROM new GROUP BY addr),
        counted AS (
            INSERT INTO offenders AS o (target, lifetime)
                SELECT addr, danger FROM per_address
                ON CONFLICT (target) DO UPDATE SET lifetime = o.lifetime + excluded.lifetime)
        SELECT count(*) INTO inserted FROM new;
        RETURN inserted;
    END
    $f$;

    CREATE FUNCTION syslogban.covering(p_target cidr) RETURNS bigint
    LANGUAGE sql STABLE SET search_path = syslogban, pg_temp AS $f$
        SELECT d.id FROM decisions d
        WHERE d.target >>= p_target AND NOT d.revoked AND (d.until IS NULL OR d.until > now())
          AND d.id = (SELECT max(l.id) FROM decisions l WHERE l.target = d.target)
        LIMIT 1;
    $f$;

    CREATE FUNCTION syslogban.decide(
        p_target cidr, p_since timestamptz, p_until timestamptz, p_reason text,
        p_score integer, p_signatures text[], p_nth integer, p_lifetime bigint,
        p_evidence text[], OUT id bigint, OUT refused text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = syslogban, pg_temp AS $f$
    BEGIN
        PERFORM lock_targets(ARRAY[p_target]);
        IF EXISTS (SELECT FROM allowlist a WHERE a.net && p_target) THEN
            refused := 'allow-listed in the fleet';
            RETURN;
        END IF;
        IF covering(p_target) IS NOT NULL THEN
            refused := 'already blocked';
            RETURN;
        END IF;
        PERFORM pg_advisory_xact_lock(1937337186, 1);  -- commits in id order
        INSERT INTO decisions (target, since, until, origin, reason, score, signatures, nth,
                               lifetime, evidence)
            VALUES (p_target, p_since, p_until, session_user, p_reason, p_score,
                    p_signatures, p_nth, p_lifetime, p_evidence[1:20])
            RETURNING decisions.id INTO id;
        PERFORM pg_notify('syslogban_decisions', id::text);
    END
    $f$;

    CREATE FUNCTION syslogban.revoke(p_target cidr) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = syslogban, pg_temp AS $f$
    DECLARE
        new_id bigint;
    BEGIN
        PERFORM lock_targets(ARRAY[p_target]);
        PERFORM pg_advisory_xact_lock(1937337186, 1);
        INSERT INTO decisions (target, origin, reason, revoked)
            VALUES (p_target, session_user, 'unblock', true) RETURNING id INTO new_id;
        PERFORM pg_notify('syslogban_decisions', new_id::text);
        RETURN new_id;
    END
    $f$;

    CREATE FUNCTION syslogban.prune(p_keep interval) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = syslogban, pg_temp AS $f$
    DECLARE
        gone bigint;
    BEGIN
        DELETE FROM events WHERE at < now() - greatest(p_keep, interval '1 hour');
        GET DIAGNOSTICS gone = ROW_COUNT;
        RETURN gone;
    END
    $f$;

    REVOKE ALL ON ALL TABLES IN SCHEMA syslogban FROM PUBLIC;
    REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA syslogban FROM PUBLIC;
    GRANT USAGE ON SCHEMA syslogban TO syslogban_host, syslogban_unblock;
    GRANT SELECT ON syslogban.hosts, syslogban.events, syslogban.decisions, syslogban.active,
                    syslogban.offenders, syslogban.allowlist TO syslogban_host;
    GRANT EXECUTE ON FUNCTION syslogban.lock_targets(cidr[]), syslogban.covering(cidr),
        syslogban.observe(bigint[], inet[], text[], text[], integer[], timestamptz[], bigint),
        syslogban.decide(cidr, timestamptz, timestamptz, text, integer, text[], integer,
                         bigint, text[]),
        syslogban.prune(interval) TO syslogban_host;
    GRANT EXECUTE ON FUNCTION syslogban.lock_targets(cidr[]), syslogban.revoke(cidr)
        TO syslogban_unblock;
    GRANT SELECT ON syslogban.active TO syslogban_unblock;
    """,
    # 2: per-target locks in 1024 buckets: a batch of thousands of addresses
    # takes at most 1024 locks (PostgreSQL's lock table is shared and small);
    # events as one text of lines (an array parameter costs the client
    # twenty times more than the server's parsing of a text)
    """
    DROP FUNCTION syslogban.observe(bigint[], inet[], text[], text[], integer[],
                                    timestamptz[], bigint);
    CREATE FUNCTION syslogban.observe(p_rows text, p_backlog bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = syslogban, pg_temp AS $f$
    DECLARE
        inserted bigint;
    BEGIN
        WITH batch AS (
            SELECT split_part(line, E'\t', 1)::bigint AS seq,
                   split_part(line, E'\t', 2)::inet AS addr,
                   split_part(line, E'\t', 3) AS signature,
                   split_part(line, E'\t', 4) AS service,
                   split_part(line, E'\t', 5)::integer AS danger,
                   to_timestamp(split_part(line, E'\t', 6)::float8) AS at
            FROM string_to_table(p_rows, E'\n') line),
        contact AS (
            INSERT INTO hosts AS h (name, last_seq, backlog)
                SELECT session_user, coalesce(max(seq), 0), p_backlog FROM batch
                ON CONFLICT (name) DO UPDATE SET last_contact = now(),
                    backlog = excluded.backlog, last_seq = greatest(h.last_seq, excluded.last_seq)),
        new AS (
            INSERT INTO events (host, seq, addr, signature, service, danger, at)
                SELECT session_user, * FROM batch
                ON CONFLICT DO NOTHING
                RETURNING addr, danger),
        per_address AS (SELECT addr, sum(danger) AS danger FROM new GROUP BY addr),
        counted AS (
            INSERT INTO offenders AS o (target, lifetime)
                SELECT addr, danger FROM per_address
                ON CONFLICT (target) DO UPDATE SET lifetime = o.lifetime + excluded.lifetime)
        SELECT count(*) INTO inserted FROM new;
        RETURN inserted;
    END
    $f$;

    -- Every decision of a batch in one statement (decide() one at a time
    -- costs a millisecond each): the ones not covered and not allow-listed are
    -- inserted, one notification for all.
    CREATE FUNCTION syslogban.decide_all(p_rows jsonb)
        RETURNS TABLE (target cidr, id bigint, refused text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = syslogban, pg_temp AS $f$
    DECLARE
        top bigint;
    BEGIN
        PERFORM lock_targets(ARRAY(SELECT x.target FROM jsonb_to_recordset(p_rows)
                                   AS x(target cidr)));
        PERFORM pg_advisory_xact_lock(1937337186, 1);  -- commits in id order
        CREATE TEMPORARY TABLE IF NOT EXISTS wanted (
            target cidr, since float8, until float8, reason text, score integer,
            signatures text[], nth integer, lifetime bigint, evidence text[], refused text
        ) ON COMMIT DROP;
        INSERT INTO pg_temp.wanted
            SELECT DISTINCT ON (x.target) x.*,
                   CASE WHEN EXISTS (SELECT FROM allowlist a WHERE a.net && x.target)
                        THEN 'allow-listed in the fleet'
                        WHEN covering(x.target) IS NOT NULL THEN 'already blocked' END
            FROM jsonb_to_recordset(p_rows) AS x(target cidr, since float8, until float8,
                 reason text, score integer, signatures text[], nth integer, lifetime bigint,
                 evidence text[]);
        RETURN QUERY
        WITH made AS (
            INSERT INTO decisions AS d (target, since, until, origin, reason, score,
                                        signatures, nth, lifetime, evidence)
                SELECT w.target, to_timestamp(w.since), to_timestamp(w.until), session_user,
                       w.reason, w.score, w.signatures, w.nth, w.lifetime, w.evidence[1:20]
                FROM pg_temp.wanted w WHERE w.refused IS NULL
                RETURNING d.target, d.id)
        SELECT made.target, made.id, NULL::text FROM made
        UNION ALL
        SELECT w.target, NULL::bigint, w.refused FROM pg_temp.wanted w
        WHERE w.refused IS NOT NULL;
        SELECT max(decisions.id) INTO top FROM decisions;
        PERFORM pg_notify('syslogban_decisions', top::text);
        DROP TABLE pg_temp.wanted;
    END
    $f$;

    REVOKE EXECUTE ON FUNCTION syslogban.observe(text, bigint), syslogban.decide_all(jsonb)
        FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION syslogban.observe(text, bigint), syslogban.decide_all(jsonb)
        TO syslogban_host;

    CREATE OR REPLACE FUNCTION syslogban.lock_targets(targets cidr[]) RETURNS void
    LANGUAGE plpgsql AS $f$
    DECLARE
        k bigint;
    BEGIN
        FOR k IN SELECT DISTINCT hashtextextended(t::text, 0) & 1023 FROM unnest(targets) t
                 ORDER BY 1 LOOP
            PERFORM pg_advisory_xact_lock(k);
        END LOOP;
    END
    $f$;
    """,
    # 3: decide_all without a temporary table (creating and dropping one took
    # most of a small batch's time)
    """
    CREATE OR REPLACE FUNCTION syslogban.decide_all(p_rows jsonb)
        RETURNS TABLE (target cidr, id bigint, refused text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = syslogban, pg_temp AS $f$
    DECLARE
        top bigint;
    BEGIN
        PERFORM lock_targets(ARRAY(SELECT x.target FROM jsonb_to_recordset(p_rows)
                                   AS x(target cidr)));
        PERFORM pg_advisory_xact_lock(1937337186, 1);  -- commits in id order
        RETURN QUERY
        WITH wanted AS (
            SELECT DISTINCT ON (x.target) x.*,
                   CASE WHEN EXISTS (SELECT FROM allowlist a WHERE a.net && x.target)
                        THEN 'allow-listed in the fleet'
                        WHEN covering(x.target) IS NOT NULL THEN 'already blocked' END
                   AS refusal
            FROM jsonb_to_recordset(p_rows) AS x(target cidr, since float8, until float8,
                 reason text, score integer, signatures text[], nth integer, lifetime bigint,
                 evidence text[])),
        made AS (
            INSERT INTO decisions AS d (target, since, until, origin, reason, score,
                                        signatures, nth, lifetime, evidence)
                SELECT w.target, to_timestamp(w.since), to_timestamp(w.until), session_user,
                       w.reason, w.score, w.signatures, w.nth, w.lifetime, w.evidence[1:20]
                FROM wanted w WHERE w.refusal IS NULL
                RETURNING d.target, d.id)
        SELECT made.target, made.id, NULL::text FROM made
        UNION ALL
        SELECT w.target, NULL::bigint, w.refusal FROM wanted w WHERE w.refusal IS NOT NULL;
        SELECT max(decisions.id) INTO top FROM decisions;
        PERFORM pg_notify('syslogban_decisions', top::text);
    END
    $f$;
    """,
    # 4: attempts, not lines: each event carries the failed logins it adds
    # (0 for a line that only raised an attempt's danger); an event line
    # without the field (an outbox of an older syslogban) is one attempt
    """
    ALTER TABLE syslogban.events ADD COLUMN attempts integer NOT NULL DEFAULT 1
        CHECK (attempts BETWEEN 0 AND 1000000);
    CREATE OR REPLACE FUNCTION syslogban.observe(p_rows text, p_backlog bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = syslogban, pg_temp AS $f$
    DECLARE
        inserted bigint;
    BEGIN
        WITH batch AS (
            SELECT split_part(line, E'\t', 1)::bigint AS seq,
                   split_part(line, E'\t', 2)::inet AS addr,
                   split_part(line, E'\t', 3) AS signature,
                   split_part(line, E'\t', 4) AS service,
                   split_part(line, E'\t', 5)::integer AS danger,
                   to_timestamp(split_part(line, E'\t', 6)::float8) AS at,
                   coalesce(nullif(split_part(line, E'\t', 7), ''), '1')::integer AS attempts
            FROM string_to_table(p_rows, E'\n') line),
        contact AS (
            INSERT INTO hosts AS h (name, last_seq, backlog)
                SELECT session_user, coalesce(max(seq), 0), p_backlog FROM batch
                ON CONFLICT (name) DO UPDATE SET last_contact = now(),
                    backlog = excluded.backlog, last_seq = greatest(h.last_seq, excluded.last_seq)),
        new AS (
            INSERT INTO events (host, seq, addr, signature, service, danger, at, attempts)
                SELECT session_user, * FROM batch
                ON CONFLICT DO NOTHING
                RETURNING addr, danger),
        per_address AS (SELECT addr, sum(danger) AS danger FROM new GROUP BY addr),
        counted AS (
            INSERT INTO offenders AS o (target, lifetime)
                SELECT addr, danger FROM per_address
                ON CONFLICT (target) DO UPDATE SET lifetime = o.lifetime + excluded.lifetime)
        SELECT count(*) INTO inserted FROM new;
        RETURN inserted;
    END
    $f$;
    """,
)

_PREPARE = """
    SELECT pg_advisory_xact_lock(1937337186, 0);
    CREATE SCHEMA IF NOT EXISTS syslogban;
    CREATE TABLE IF NOT EXISTS syslogban.version (version integer NOT NULL);
"""


def version(conn: Any) -> int:
    """The schema version of the database (0: none yet)."""
    row = conn.execute("SELECT to_regclass('syslogban.version') IS NOT NULL").fetchone()
    if not row[0]:
        return 0
    found = conn.execute("SELECT max(version) FROM syslogban.version").fetchone()[0]
    return int(found or 0)


def migrate(conn: Any) -> tuple[int, int]:
    """Brings the schema up to date in one transaction; (version before, after).

    `conn` is a psycopg Connection of the database's owner (or a role that
    may create the group roles, or finds them made by setup.sql)."""
    with conn.transaction():
        conn.execute(_PREPARE)
        before = version(conn)
        if before > len(MIGRATIONS):
            raise RuntimeError(f"the fleet schema is at version {before}, newer than this "
                               f"syslogban ({len(MIGRATIONS)}): upgrade syslogban")
        for number, script in enumerate(MIGRATIONS[before:], start=before + 1):
            conn.execute(script)
            conn.execute("DELETE FROM syslogban.version")
            conn.execute(f"INSERT INTO syslogban.version VALUES ({number})")
    return before, len(MIGRATIONS)


def hosts(conn: Any) -> Sequence[tuple[Any, ...]]:
    """(name, first seen, last contact, backlog, last sequence) of every host."""
    return conn.execute(  # type: ignore[no-any-return]
        "SELECT name, first_seen, last_contact, backlog, last_seq FROM syslogban.hosts "
        "ORDER BY name").fetchall()
