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
* The decision log is append-only (a revocation is a row too). Each row
  carries its transaction's id (xid8); a follower's cursor is the snapshot
  of its last read, and it reads the rows that became visible since
  (pg_visible_in_snapshot), so no row is ever skipped, whatever order
  concurrent deciders commit in (from version 5; before, one lock kept the
  commits in id order and serialised every decider).
* One winner per target: every writer of decisions locks the targets' rows
  of `standing` (hold(), an upsert in address order, so no deadlock) and
  reads what decides in a later statement, whose snapshot holds every
  transaction it waited for. A crossing is never missed: a host scores an
  address's events after its own events of it committed, so of hosts at
  once the last to commit sees them all.
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
    # 5: hosts no longer wait for one another. ingest() stores a batch's
    # events in a transaction of its own and returns the addresses whose
    # lifetime reaches the lowest bar; score(), called after that commit,
    # reads their events in a snapshot that holds every transaction committed
    # before it (of hosts storing one address's events at once, the last to
    # commit sees them all: no crossing missed). decide_all() locks its
    # targets' rows of `standing` (hold(), in address order: no deadlock)
    # and inserts what is neither covered, allow-listed nor decided otherwise
    # since the facts were read (`expected`): one winner per crossing.
    # `standing` is where each decided target stands (its last decision, the
    # time until which its events count nothing, its blocks): the checks
    # read one row instead of the log, and ingest() (offenders) and
    # decide_all() (standing) never wait for each other. The decision log
    # has no commit-order lock any more: each row carries its transaction id,
    # and a follower reads what became visible since its last snapshot
    # (pg_visible_in_snapshot), so none is ever skipped.
    """
    ALTER TABLE syslogban.decisions ADD COLUMN xid xid8 NOT NULL
        DEFAULT pg_current_xact_id();
    CREATE INDEX decisions_xid ON syslogban.decisions (xid);
    ALTER TABLE syslogban.offenders ADD COLUMN attempts bigint NOT NULL DEFAULT 0;
    UPDATE syslogban.offenders o SET attempts = coalesce(
        (SELECT sum(e.attempts) FROM syslogban.events e WHERE e.addr = o.target), 0);

    CREATE TABLE syslogban.standing (
        target      inet PRIMARY KEY,
        last_id     bigint NOT NULL DEFAULT 0,    -- its last decision
        quiet_until timestamptz NOT NULL DEFAULT '-infinity',  -- events until then count
                                                  -- nothing: its block's end, its unblock
        blocks      integer NOT NULL DEFAULT 0,   -- its blocks (escalation)
        prefix      boolean GENERATED ALWAYS AS
                        (masklen(target) < CASE family(target) WHEN 4 THEN 32 ELSE 128 END)
                        STORED
    );
    CREATE INDEX standing_prefixes ON syslogban.standing USING gist (target inet_ops)
        WHERE prefix;
    INSERT INTO syslogban.standing (target, last_id, quiet_until, blocks)
        SELECT DISTINCT ON (d.target) d.target, d.id,
               CASE WHEN d.revoked THEN d.since ELSE coalesce(d.until, 'infinity') END,
               count(*) FILTER (WHERE NOT d.revoked) OVER (PARTITION BY d.target)
        FROM syslogban.decisions d ORDER BY d.target, d.id DESC;
    GRANT SELECT ON syslogban.standing TO syslogban_host;

    -- Whether a block in force covers the target: its own, or a prefix's.
    CREATE FUNCTION syslogban.blocked(p_target inet) RETURNS boolean
    LANGUAGE sql STABLE AS $f$
        SELECT EXISTS (SELECT FROM syslogban.standing t
                       WHERE t.target = p_target AND t.quiet_until > now())
            OR EXISTS (SELECT FROM syslogban.standing t
                       WHERE t.prefix AND t.target >> p_target AND t.quiet_until > now());
    $f$;

    -- The standing rows of these targets locked until the end of the
    -- transaction, in one order for every caller; a target seen the first
    -- time gets its row. (ON CONFLICT DO UPDATE locks the row it finds
    -- before its WHERE, which is false here: locked, not written again.)
    CREATE FUNCTION syslogban.hold(p_targets inet[]) RETURNS void
    LANGUAGE sql AS $f$
        INSERT INTO syslogban.standing AS t (target)
            SELECT DISTINCT x FROM unnest(p_targets) x ORDER BY x
            ON CONFLICT (target) DO UPDATE SET last_id = t.last_id WHERE false;
    $f$;

    -- The events of a batch; the addresses whose lifetime danger or attempts
    -- reach the lowest bar (the only ones that can cross: score() says
    -- whether they do). Every address of the batch, new events or not: a
    -- batch sent again (its first try failed after this) finds them again.
    CREATE FUNCTION syslogban.ingest(
        p_rows text, p_backlog bigint, p_danger bigint, p_attempts bigint, p_blacklist bigint)
        RETURNS SETOF text
    LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = syslogban, pg_temp AS $f$
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
                RETURNING addr, danger, attempts),
        added AS (SELECT addr, sum(danger) AS danger, sum(attempts) AS attempts
                  FROM new GROUP BY addr),
        counted AS (
            INSERT INTO offenders AS o (target, lifetime, attempts)
                SELECT b.addr, coalesce(a.danger, 0), coalesce(a.attempts, 0)
                FROM (SELECT DISTINCT addr FROM batch) b LEFT JOIN added a USING (addr)
                ORDER BY b.addr  -- rows locked in one order: no deadlock
                ON CONFLICT (target) DO UPDATE SET lifetime = o.lifetime + excluded.lifetime,
                    attempts = o.attempts + excluded.attempts
                RETURNING o.target, o.lifetime, o.attempts)
        SELECT host(target) FROM counted
        WHERE lifetime >= least(p_danger, p_blacklist) OR attempts >= p_attempts;
    $f$;

    -- The facts of the addresses that cross now: their earlier blocks,
    -- lifetime danger, last decision, and the events that count (after
    -- quiet_until, within the window), one row an address with its events
    -- as lines. Called after the ingest() of those events committed: of the
    -- hosts that stored events of one address at once, the last to commit
    -- reads them all.
    CREATE FUNCTION syslogban.score(
        p_addresses text, p_horizon float8, p_danger bigint, p_attempts bigint,
        p_blacklist bigint)
        RETURNS TABLE (addr text, blocks integer, lifetime bigint, last_id bigint, lines text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = syslogban, pg_temp AS $f$
        SELECT host(o.target), coalesce(t.blocks, 0), o.lifetime, coalesce(t.last_id, 0),
               s.lines
        FROM string_to_table(p_addresses, ' ') a
        JOIN offenders o ON o.target = a::inet
        LEFT JOIN standing t ON t.target = o.target
        CROSS JOIN LATERAL (
            SELECT sum(e.danger) AS danger, sum(e.attempts) AS attempts,
                   string_agg(concat_ws(E'\t', e.host, e.seq, e.signature, e.service, e.danger,
                                        extract(epoch FROM e.at)::float8, e.attempts),
                              E'\n') AS lines
            FROM events e
            WHERE e.addr = o.target
              AND e.at > greatest(t.quiet_until, to_timestamp(p_horizon))) s
        WHERE s.lines IS NOT NULL
          AND (s.danger >= p_danger OR s.attempts >= p_attempts OR o.lifetime >= p_blacklist)
          AND NOT EXISTS (SELECT FROM standing w
                          WHERE w.prefix AND w.target >> o.target AND w.quiet_until > now());
    $f$;

    -- Blocks (this host's own, or the fleet's scores), each unless a block in
    -- force covers it, the central allow-list holds it, or its target has a
    -- decision other than `expected` (the last one when its facts were read;
    -- absent: not checked). One notification for all.
    CREATE OR REPLACE FUNCTION syslogban.decide_all(p_rows jsonb)
        RETURNS TABLE (target cidr, id bigint, refused text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = syslogban, pg_temp AS $f$
    BEGIN
        PERFORM hold(ARRAY(SELECT x.target::inet FROM jsonb_to_recordset(p_rows)
                           AS x(target cidr)));
        RETURN QUERY
        WITH wanted AS (
            SELECT DISTINCT ON (x.target) x.*,
                   CASE WHEN EXISTS (SELECT FROM allowlist a WHERE a.net && x.target)
                        THEN 'allow-listed in the fleet'
                        WHEN blocked(x.target) THEN 'already blocked'
                        WHEN x.expected IS NOT NULL AND x.expected <> coalesce(
                            (SELECT t.last_id FROM standing t WHERE t.target = x.target), 0)
                        THEN 'decided otherwise meanwhile' END
                   AS refusal
            FROM jsonb_to_recordset(p_rows) AS x(target cidr, since float8, until float8,
                 reason text, score integer, signatures text[], nth integer, lifetime bigint,
                 evidence text[], expected bigint)),
        made AS (
            INSERT INTO decisions AS d (target, since, until, origin, reason, score,
                                        signatures, nth, lifetime, evidence)
                SELECT w.target, to_timestamp(w.since), to_timestamp(w.until), session_user,
                       w.reason, w.score, w.signatures, w.nth, w.lifetime, w.evidence[1:20]
                FROM wanted w WHERE w.refusal IS NULL
                RETURNING d.target, d.id, d.until),
        stand AS (
            UPDATE standing t SET last_id = made.id, blocks = t.blocks + 1,
                                  quiet_until = coalesce(made.until, 'infinity')
            FROM made WHERE t.target = made.target)
        SELECT made.target, made.id, NULL::text FROM made
        UNION ALL
        SELECT w.target, NULL::bigint, w.refusal FROM wanted w WHERE w.refusal IS NOT NULL;
        IF FOUND THEN
            PERFORM pg_notify('syslogban_decisions', (SELECT max(decisions.id)::text
                                                      FROM decisions));
        END IF;
    END
    $f$;

    CREATE OR REPLACE FUNCTION syslogban.covering(p_target cidr) RETURNS bigint
    LANGUAGE sql STABLE SET search_path = syslogban, pg_temp AS $f$
        SELECT t.last_id FROM standing t
        WHERE t.target >>= p_target AND t.quiet_until > now()
        ORDER BY masklen(t.target) DESC LIMIT 1;
    $f$;

    CREATE OR REPLACE FUNCTION syslogban.decide(
        p_target cidr, p_since timestamptz, p_until timestamptz, p_reason text,
        p_score integer, p_signatures text[], p_nth integer, p_lifetime bigint,
        p_evidence text[], OUT id bigint, OUT refused text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = syslogban, pg_temp AS $f$
    BEGIN
        SELECT d.id, d.refused INTO id, refused FROM decide_all(jsonb_build_array(
            jsonb_build_object('target', p_target, 'since', extract(epoch FROM p_since),
                               'until', extract(epoch FROM p_until), 'reason', p_reason,
                               'score', p_score, 'signatures', p_signatures, 'nth', p_nth,
                               'lifetime', p_lifetime, 'evidence', p_evidence))) d;
    END
    $f$;

    -- An admin's unblock, unless the target was blocked again after it (a
    -- batch sent again must not lift a newer block).
    CREATE FUNCTION syslogban.revoke(p_target cidr, p_at timestamptz) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = syslogban, pg_temp AS $f$
    DECLARE
        new_id bigint;
    BEGIN
        PERFORM hold(ARRAY[p_target::inet]);
        IF EXISTS (SELECT FROM standing t JOIN decisions d ON d.id = t.last_id
                   WHERE t.target = p_target AND NOT d.revoked AND d.since > p_at) THEN
            RETURN NULL;
        END IF;
        INSERT INTO decisions (target, origin, reason, revoked)
            VALUES (p_target, session_user, 'unblock', true) RETURNING id INTO new_id;
        UPDATE standing SET last_id = new_id, quiet_until = now() WHERE target = p_target;
        PERFORM pg_notify('syslogban_decisions', new_id::text);
        RETURN new_id;
    END
    $f$;
    CREATE OR REPLACE FUNCTION syslogban.revoke(p_target cidr) RETURNS bigint
    LANGUAGE sql SECURITY DEFINER SET search_path = syslogban, pg_temp AS $f$
        SELECT revoke(p_target, now());
    $f$;

    REVOKE EXECUTE ON FUNCTION syslogban.hold(inet[]), syslogban.blocked(inet),
        syslogban.ingest(text, bigint, bigint, bigint, bigint),
        syslogban.score(text, float8, bigint, bigint, bigint),
        syslogban.revoke(cidr, timestamptz) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION syslogban.ingest(text, bigint, bigint, bigint, bigint),
        syslogban.score(text, float8, bigint, bigint, bigint) TO syslogban_host;
    GRANT EXECUTE ON FUNCTION syslogban.revoke(cidr, timestamptz) TO syslogban_unblock;
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
