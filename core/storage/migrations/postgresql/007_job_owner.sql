-- PostgreSQL twin of ../007_job_owner.sql. Who a job is for, as the chat shows them, settled
-- when it is submitted: notifiers mention the owner in groups without looking anyone up.
ALTER TABLE jobs ADD COLUMN owner_id TEXT;      -- the owner's platform user id
ALTER TABLE jobs ADD COLUMN owner_name TEXT;    -- their display name at submit time
