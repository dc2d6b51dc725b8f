-- Social (SPEC §12): every delivered clip is a post; likes; per-chat creator totals.
CREATE TABLE posts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    platform TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    owner_id INTEGER NOT NULL REFERENCES users (id),
    created_at REAL NOT NULL,
    source_post_id INTEGER REFERENCES posts (id),
    generation INTEGER NOT NULL DEFAULT 1 CHECK (generation >= 1),
    clip_path TEXT,                   -- kept POST_TTL_DAYS (relative to MEDIA_DIR or absolute)
    file_id TEXT,                     -- platform file id of the delivered clip (inline mode)
    message_id TEXT,                  -- the delivered message, for links
    search_text TEXT NOT NULL DEFAULT '',  -- lower-case template name and prompt (inline search)
    likes INTEGER NOT NULL DEFAULT 0 CHECK (likes >= 0),  -- every like (shown on 👍)
    score INTEGER NOT NULL DEFAULT 0 CHECK (score >= 0),  -- likes not counting the owner's
    deleted_at REAL
);
-- A chat's feed: the window on created_at, ranked by score, read from the index alone.
CREATE INDEX posts_feed ON posts (platform, chat_id, created_at, score, id)
    WHERE deleted_at IS NULL;
CREATE INDEX posts_owner ON posts (owner_id, created_at);
CREATE INDEX posts_message ON posts (platform, chat_id, message_id);
CREATE INDEX posts_source ON posts (source_post_id);

-- One like per person per post; `day` (UTC days since 1970) finds its creator_likes row.
CREATE TABLE post_likes (
    post_id INTEGER NOT NULL REFERENCES posts (id),
    user_id INTEGER NOT NULL REFERENCES users (id),
    liked_at REAL NOT NULL,
    day INTEGER NOT NULL,
    PRIMARY KEY (post_id, user_id)
);

-- Likes a creator received in a chat per day, self-likes and deleted posts left out: /top
-- sums 30 of these days instead of counting every like.
CREATE TABLE creator_likes (
    platform TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    day INTEGER NOT NULL,
    owner_id INTEGER NOT NULL REFERENCES users (id),
    likes INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (platform, chat_id, day, owner_id)
);

-- /top's answer kept ready: each creator's likes from others since the chat's from_day
-- (the sum of its creator_likes days), rebuilt when the 30-day window moves to a new day.
CREATE TABLE chat_windows (
    platform TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    from_day INTEGER NOT NULL,        -- -1: not built yet
    PRIMARY KEY (platform, chat_id)
);
CREATE TABLE creator_window (
    platform TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    owner_id INTEGER NOT NULL REFERENCES users (id),
    likes INTEGER NOT NULL,
    PRIMARY KEY (platform, chat_id, owner_id)
);
CREATE INDEX creator_window_rank ON creator_window (platform, chat_id, likes DESC, owner_id);
