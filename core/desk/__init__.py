"""The Desk: the only object an adapter receives from the core (see desk.py)."""

from core.desk.desk import Desk, FileIds, Outlet
from core.desk.events import (
    AccountAsked,
    AdminCommand,
    ClipShared,
    Event,
    FormAnswered,
    GlitchShortcut,
    Incoming,
    LanguageChosen,
    MusicAsked,
    PhotoSent,
    Pressed,
    Started,
    TemplateShortcut,
    TextTyped,
    Unusable,
    VideoSent,
)
from core.sessions import Awaiting
from core.studio.admin import Target
from core.studio.replies import Alert, AskText, ChatContext, Edit, Out, Reply, Send, SendMedia

__all__ = [
    "AccountAsked", "AdminCommand", "Alert", "AskText", "Awaiting", "ChatContext", "ClipShared",
    "Desk", "Edit", "Event", "FileIds", "FormAnswered", "GlitchShortcut", "Incoming", "LanguageChosen",
    "MusicAsked", "Out", "Outlet", "PhotoSent", "Pressed", "Reply", "Send", "SendMedia", "Started",
    "Target", "TemplateShortcut", "TextTyped", "Unusable", "VideoSent",
]
