-- PostgreSQL twin of ../013_job_webhooks.sql. A Replicate webhook may land on any instance:
-- that instance records the finished prediction here (JSON) and wakes the job's waiter with
-- NOTIFY lokiz_webhooks (the waiter's instance LISTENs). Polling stays the fallback.
ALTER TABLE jobs ADD COLUMN webhook_prediction TEXT;
-- The fair order and the deployment-wide ceiling read queued and running jobs.
CREATE INDEX jobs_active_user ON jobs (user_id, created_at) WHERE status IN ('queued', 'running');
