-- Rhizome's database and its login role, created when missing (idempotent: safe to run again).
--
-- docker-compose.yml mounts this file in /docker-entrypoint-initdb.d/, where the postgres image runs it
-- with psql as the superuser on the first start of an empty data volume. For an external server, an
-- administrator runs it the same way:
--     RHIZOME_DB_PASSWORD=... psql "postgresql://postgres@HOST/postgres" -v ON_ERROR_STOP=1 -f init.sql
-- The role's password is read from the RHIZOME_DB_PASSWORD environment variable of psql (\getenv,
-- psql 15 or newer); no password is written in this file. The schema itself is Alembic's job:
-- `rhizome db upgrade` (the compose `migrate` service, the k8s `rhizome-migrate` Job).

\getenv rhizome_password RHIZOME_DB_PASSWORD
\if :{?rhizome_password}
\else
  -- fails the script (the postgres image and the command above run psql with ON_ERROR_STOP=1)
  DO $$ BEGIN RAISE EXCEPTION 'init.sql: set RHIZOME_DB_PASSWORD in the environment of psql'; END $$;
\endif

SELECT format('CREATE ROLE rhizome LOGIN PASSWORD %L', :'rhizome_password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rhizome')
\gexec

SELECT 'CREATE DATABASE rhizome OWNER rhizome ENCODING ''UTF8'' TEMPLATE template0'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'rhizome')
\gexec

-- Timestamps are stored and compared in UTC whatever the server's default.
ALTER DATABASE rhizome SET timezone TO 'UTC';
