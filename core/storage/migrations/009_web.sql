-- The web studio (SPEC §11): browser users are platform 'web'; their conversation and
-- the media it shows are stored, so a reload (or another instance) shows the same page.

-- SQLite cannot alter a CHECK: rebuild users with 'web' allowed, keeping rows and ids.
-- Foreign keys are checked at commit, when every referenced user is back.
PRAGMA defer_foreign_keys = ON;
CREATE TEMP TABLE users_kept AS SELECT * FROM users;
DROP TABLE users;
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'discord', 'web')),
    platform_user_id TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    username TEXT,
    language TEXT,
    platform_language TEXT,
    balance INTEGER NOT NULL DEFAULT 0 CHECK (balance >= 0),
    contacted INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    seen_at REAL NOT NULL,
    UNIQUE (platform, platform_user_id)
);
INSERT INTO users (id, platform, platform_user_id, display_name, username, language,
    platform_language, balance, contacted, created_at, seen_at)
    SELECT id, platform, platform_user_id, display_name, username, language,
    platform_language, balance, contacted, created_at, seen_at FROM users_kept;
DROP TABLE users_kept;
CREATE INDEX users_username ON users (platform, lower(username));

-- One row per message on a browser's page (its chat: the browser's id); `rev` grows with
-- every write, so a page asks for what changed since the last revision it saw.
CREATE TABLE web_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id TEXT NOT NULL,
    rev INTEGER NOT NULL,
    mine INTEGER NOT NULL DEFAULT 0,  -- 1: what the person sent; 0: the studio's answer
    body TEXT NOT NULL,               -- JSON: text, buttons, media, form
    delivery TEXT,                    -- a job's result: written once, however often it is sent
    created_at REAL NOT NULL
);
CREATE INDEX web_messages_rev ON web_messages (chat_id, rev);
CREATE UNIQUE INDEX web_messages_delivery ON web_messages (delivery);

-- Media a page may show, by opaque id, to its owner only.
CREATE TABLE web_media (
    id TEXT PRIMARY KEY,
    chat_id TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at REAL NOT NULL
);
