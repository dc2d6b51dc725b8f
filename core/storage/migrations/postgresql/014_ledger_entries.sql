-- PostgreSQL twin of ../014_ledger_entries.sql. The id is an identity column already (its
-- sequence writes no row per entry); the job index, as there, holds charges only: it
-- serves one lookup, a refund finding the job's charge.
DROP INDEX ledger_job;
CREATE INDEX ledger_job ON ledger (job_id) WHERE kind = 'charge';
