"""Factor 5, orchestration: the agent loop and checkpointed workflows (both resume where they stopped)."""

from workbench.orchestration.agent import Agent, AgentRun
from workbench.orchestration.workflow import Step, Workflow, WorkflowError, WorkflowRun

__all__ = ["Agent", "AgentRun", "Step", "Workflow", "WorkflowError", "WorkflowRun"]
