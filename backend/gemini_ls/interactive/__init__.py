"""Interactive pre-annotation from the annotator's click, box or phrase (Label Studio smart tools)."""

from .context import ContextError, Interaction, parse_context
from .service import InteractiveService, Timings

__all__ = ["ContextError", "Interaction", "InteractiveService", "Timings", "parse_context"]
