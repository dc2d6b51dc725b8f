-- PostgreSQL twin of ../004_delivery_sends.sql. Exactly-once delivery (issue 9): a send is recorded before it is made, so that a
-- crash or a lost answer never leads to a refund of a clip that may have arrived.
ALTER TABLE jobs ADD COLUMN delivery_sends INTEGER NOT NULL DEFAULT 0;      -- sends that may have reached the chat
ALTER TABLE jobs ADD COLUMN delivery_unconfirmed INTEGER NOT NULL DEFAULT 0; -- delivered, but no platform confirmed it
