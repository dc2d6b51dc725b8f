-- Backend port idempotency (issue 11): a job is recorded as `creating` (the time its
-- create may have been sent) before the create request, so that recovery looks up
-- the prediction it may have made instead of creating a second one.
ALTER TABLE jobs ADD COLUMN creating_since REAL;
