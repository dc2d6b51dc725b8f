"""Social (SPEC §12): posts and lineage, likes, a chat's feed and top, inline, delete."""

from core.social.posts import (
    FEED_DAYS,
    FEED_PAGE_SIZE,
    POST_TTL_DAYS,
    TOP_DAYS,
    TOP_SIZE,
    Creator,
    Deleted,
    FeedPage,
    Post,
    PostGone,
    Posts,
)
from core.social.screens import (
    DELETE,
    FEED_PAGE,
    LIKE,
    REMIX,
    Link,
    delete_answer,
    feed_screen,
    like_answer,
    like_button,
    lineage_line,
    parse_post_id,
    post_screen,
    top_screen,
)

__all__ = [
    "DELETE", "FEED_DAYS", "FEED_PAGE", "FEED_PAGE_SIZE", "LIKE", "POST_TTL_DAYS", "REMIX", "TOP_DAYS",
    "TOP_SIZE", "Creator", "Deleted", "FeedPage", "Link", "Post", "PostGone", "Posts",
    "delete_answer", "feed_screen", "like_answer", "like_button", "lineage_line",
    "parse_post_id", "post_screen", "top_screen",
]
