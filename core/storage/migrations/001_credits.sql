-- Users and the append-only credit ledger (SPEC §3).
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'discord')),
    platform_user_id TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    username TEXT,
    language TEXT,
    platform_language TEXT,
    balance INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
    -- set when the user first talks to the bot (admins may create users earlier)
    contacted INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    seen_at REAL NOT NULL,
    UNIQUE (platform, platform_user_id)
);
CREATE INDEX users_username ON users (platform, lower(username));

CREATE TABLE ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
CREATE INDEX ledger_user ON ledger (user_id, id);
CREATE INDEX ledger_job ON ledger (job_id);

-- The balance is the sum of the entries, kept by the database itself: an entry that
-- would take it below zero fails the users CHECK and is not written.
CREATE TRIGGER ledger_moves_balance AFTER INSERT ON ledger
BEGIN UPDATE users SET balance = balance + NEW.delta WHERE id = NEW.user_id; END;

-- The ledger is append-only.
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only'); END;
