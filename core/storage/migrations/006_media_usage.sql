-- Who brought which input file, for the per-user media quota (MAX_MEDIA_MB_PER_USER).
-- A row lives as long as the file (MEDIA_TTL_HOURS after its last use).
CREATE TABLE media_usage (
    user_id INTEGER NOT NULL REFERENCES users (id),
    path TEXT NOT NULL,               -- relative to MEDIA_DIR
    bytes INTEGER NOT NULL,
    used_at REAL NOT NULL,
    PRIMARY KEY (user_id, path)
);
CREATE INDEX media_usage_used_at ON media_usage (used_at);
