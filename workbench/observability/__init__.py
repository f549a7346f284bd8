"""Factor 9a, observability: spans, the call log, deployment health, alerts."""

from workbench.observability.alerts import Alerts, AlertWarning
from workbench.observability.calls import CallLog, deployment_health
from workbench.observability.spans import Trace, new_id

__all__ = ["AlertWarning", "Alerts", "CallLog", "Trace", "deployment_health", "new_id"]
