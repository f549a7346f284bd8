"""Factor 3, memory: working memory (sessions) and long-term memory (scopes, ranking, forgetting)."""

from workbench.memory.longterm import Memory, MemoryItem, check_scope, similarity, visible_scopes
from workbench.memory.sessions import Session, Sessions, SessionState

__all__ = ["Memory", "MemoryItem", "Session", "SessionState", "Sessions", "check_scope", "similarity", "visible_scopes"]
