-- PostgreSQL twin of ../011_job_claims.sql. One engine step of a job runs on one instance at a
-- time (issue 11): `run_job` claims the job with a conditional update; a lease that is not
-- renewed lets another instance take over.
ALTER TABLE jobs ADD COLUMN claimed_by TEXT;                -- the instance running the job's step
ALTER TABLE jobs ADD COLUMN claimed_until DOUBLE PRECISION; -- its lease: after this, any instance may claim
