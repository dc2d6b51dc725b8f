"""The Desk: the only object an adapter receives from the core (see desk.py)."""

from core.desk.desk import AnswerTooLate, Desk, FileIds, Outlet
from core.desk.events import (
    AccountAsked,
    AdminCommand,
    ClipShared,
    Event,
    FeedAsked,
    FormAnswered,
    GlitchShortcut,
    Incoming,
    LanguageChosen,
    MusicAsked,
    PhotoSent,
    PostAsked,
    PostDeleteAsked,
    Pressed,
    Started,
    TemplateShortcut,
    TextTyped,
    TopAsked,
    Unusable,
    VideoSent,
)
from core.sessions import Awaiting
from core.social.screens import InlineAnswer, InlineClip
from core.studio.admin import Target
from core.studio.replies import (
    Alert,
    AskText,
    ChatContext,
    Edit,
    FeedClip,
    Out,
    Reply,
    Send,
    SendFeed,
    SendMedia,
)

__all__ = [
    "AccountAsked", "AdminCommand", "Alert", "AnswerTooLate", "AskText", "Awaiting", "ChatContext",
    "ClipShared", "Desk", "Edit", "Event", "FeedAsked", "FeedClip", "FileIds", "FormAnswered",
    "GlitchShortcut", "Incoming", "InlineAnswer", "InlineClip", "LanguageChosen", "MusicAsked", "Out",
    "Outlet", "PhotoSent", "PostAsked", "PostDeleteAsked", "Pressed", "Reply", "Send", "SendFeed",
    "SendMedia", "Started", "Target", "TemplateShortcut", "TextTyped", "TopAsked", "Unusable",
    "VideoSent",
]
