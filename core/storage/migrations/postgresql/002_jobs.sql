-- Durable jobs (SPEC §5); PostgreSQL twin of ../002_jobs.sql.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    -- insertion order, for ties in created_at (SQLite uses its rowid)
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    platform TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    language TEXT NOT NULL DEFAULT 'en',
    session_id TEXT,
    reply_to_message_id TEXT,
    status_message_id TEXT,
    action TEXT NOT NULL,
    model TEXT NOT NULL,
    backend TEXT NOT NULL,
    request TEXT NOT NULL,            -- JSON JobRequest
    prepared_inputs TEXT,             -- JSON inputs after upload (set before create)
    prediction_id TEXT,
    price BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN
        ('queued', 'running', 'succeeded', 'delivered', 'failed', 'canceled', 'timed_out')),
    error_class TEXT,
    error_detail TEXT,
    output_path TEXT,
    delivered_message_id TEXT,
    delivered_file_id TEXT,
    delivery_attempts INTEGER NOT NULL DEFAULT 0,
    likes INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    deadline_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX jobs_status ON jobs (status, created_at);
CREATE INDEX jobs_user ON jobs (user_id, created_at);
CREATE INDEX jobs_prediction ON jobs (prediction_id);

-- Who pressed 👍 on a result (one each).
CREATE TABLE job_likes (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    user_id BIGINT NOT NULL REFERENCES users (id),
    PRIMARY KEY (job_id, user_id)
);
