-- Cheaper ledger entries (every charge, refund and starter entry writes one):
-- - the id without AUTOINCREMENT: an entry no longer also writes sqlite_sequence. The
--   ledger is append-only (nothing is ever deleted), so the largest id is never freed
--   and ids still only grow;
-- - the job index holds charges only: it serves one lookup, a refund finding the job's
--   charge, so refunds, grants and starter entries no longer write it.
CREATE TABLE ledger_new (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    delta INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('starter', 'grant', 'revoke', 'charge', 'refund')),
    actor TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    job_id TEXT,
    idempotency_key TEXT NOT NULL UNIQUE,
    balance_after INTEGER NOT NULL CHECK (balance_after >= 0),
    created_at REAL NOT NULL
);
INSERT INTO ledger_new SELECT id, user_id, delta, kind, actor, reason, job_id,
    idempotency_key, balance_after, created_at FROM ledger ORDER BY id;
DROP TRIGGER ledger_moves_balance;
DROP TRIGGER ledger_no_update;
DROP TRIGGER ledger_no_delete;
DROP TABLE ledger;
ALTER TABLE ledger_new RENAME TO ledger;
DELETE FROM sqlite_sequence WHERE name = 'ledger';
CREATE INDEX ledger_user ON ledger (user_id, id);
CREATE INDEX ledger_job ON ledger (job_id) WHERE kind = 'charge';

-- As in 001: the database moves the balance and refuses overdrafts; append-only.
CREATE TRIGGER ledger_moves_balance AFTER INSERT ON ledger
BEGIN UPDATE users SET balance = balance + NEW.delta WHERE id = NEW.user_id; END;
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
