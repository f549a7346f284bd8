"""Factor 5, orchestration: the agent loop (tool calls, delegation, parked runs that resume)."""

from workbench.orchestration.agent import Agent, AgentRun

__all__ = ["Agent", "AgentRun"]
