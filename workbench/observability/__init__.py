"""Factor 9a, observability: spans, the call log, deployment health."""

from workbench.observability.calls import CallLog, deployment_health
from workbench.observability.spans import Trace, new_id

__all__ = ["CallLog", "Trace", "deployment_health", "new_id"]
