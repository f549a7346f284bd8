"""Factor 9a, observability: spans, the call log, deployment health, alerts."""

from workbench.observability.alerts import Alerts, AlertWarning
from workbench.observability.calls import CallLog, deployment_health
from workbench.observability.spans import Trace, iso_ns, new_id, run_trace, span_row

__all__ = [
    "AlertWarning",
    "Alerts",
    "CallLog",
    "Trace",
    "deployment_health",
    "iso_ns",
    "new_id",
    "run_trace",
    "span_row",
]
