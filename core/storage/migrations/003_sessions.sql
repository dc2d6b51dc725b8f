-- Studio sessions (SPEC §2): one user's work in one chat, addressed by a short id
-- so buttons keep working after a restart and on another instance.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    platform TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    chat_kind TEXT NOT NULL DEFAULT 'private',
    step TEXT NOT NULL,
    data TEXT NOT NULL,               -- JSON: paths, times, choices
    awaiting TEXT,                    -- what typed/sent input the session waits for
    message_id TEXT,                  -- the studio message that buttons edit in place
    version INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX sessions_owner ON sessions (platform, chat_id, user_id, updated_at);

-- Platform file ids of media already uploaded (re-sends upload nothing).
CREATE TABLE platform_files (
    platform TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    file_id TEXT NOT NULL,
    PRIMARY KEY (platform, sha256)
);

-- Every admin command tried, allowed or refused.
CREATE TABLE admin_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL,
    actor TEXT NOT NULL,
    command TEXT NOT NULL,
    allowed INTEGER NOT NULL,
    created_at REAL NOT NULL
);
