-- syslogban fleet: the roles and the database. Run once, as a superuser:
--     psql -v ON_ERROR_STOP=1 -f setup.sql
-- Idempotent: running it again changes nothing. Then, as the owner:
--     syslogban fleet init --dsn postgresql://syslogban@DB-HOST/syslogban
-- Roles (see README.md):
--   syslogban          owns the schema; runs `fleet init` (no host logs in as it)
--   syslogban_host     group of the hosts: write their own events, decide, read
--   syslogban_unblock  group of who may lift a block fleet-wide
SELECT 'CREATE ROLE syslogban LOGIN'
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'syslogban') \gexec
SELECT 'CREATE ROLE syslogban_host NOLOGIN'
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'syslogban_host') \gexec
SELECT 'CREATE ROLE syslogban_unblock NOLOGIN'
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'syslogban_unblock') \gexec
SELECT 'CREATE DATABASE syslogban OWNER syslogban'
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'syslogban') \gexec
REVOKE ALL ON DATABASE syslogban FROM PUBLIC;
GRANT CONNECT ON DATABASE syslogban TO syslogban, syslogban_host, syslogban_unblock;

-- One role per host, named as the host and as the CN of its TLS client
-- certificate (pg_hba.conf: hostssl syslogban +syslogban_host 0.0.0.0/0 cert):
--     CREATE ROLE "mx1.example.org" LOGIN IN ROLE syslogban_host;
-- Hosts whose admins may lift a block everywhere (`syslogban unblock` there
-- acts fleet-wide; elsewhere it lifts the block on that host only):
--     GRANT syslogban_unblock TO "mx1.example.org";
