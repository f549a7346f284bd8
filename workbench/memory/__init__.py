"""Factor 3, memory: working memory (sessions)."""

from workbench.memory.sessions import Session, Sessions, SessionState

__all__ = ["Session", "SessionState", "Sessions"]
