-- PostgreSQL twin of ../006_media_usage.sql. Who brought which input file, for the per-user media quota (MAX_MEDIA_MB_PER_USER).
-- A row lives as long as the file (MEDIA_TTL_HOURS after its last use).
CREATE TABLE media_usage (
    user_id BIGINT NOT NULL REFERENCES users (id),
    path TEXT NOT NULL,               -- relative to MEDIA_DIR
    bytes BIGINT NOT NULL,
    used_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (user_id, path)
);
CREATE INDEX media_usage_used_at ON media_usage (used_at);
