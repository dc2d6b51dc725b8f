-- A Replicate webhook may land on any instance (issue 12): the instance that receives it
-- records the finished prediction here (JSON) and wakes the job's waiter wherever it runs.
ALTER TABLE jobs ADD COLUMN webhook_prediction TEXT;
