"""A process that resumes a parked agent run (or decides an approval) at an agreed instant.

Usage: python resume_child.py STORE MARKS START (resume RUN_ID | decide APPROVAL DECISION | hold RUN_ID)

``db.drop`` appends a line to MARKS each time it really runs and takes a moment, so two
processes resuming together overlap; START (epoch seconds) lines them up. ``hold`` resumes
and sleeps inside the tool, for the parent to SIGKILL.
"""

import json
import os
import sys
import time

from workbench.approvals import ApprovalError
from workbench.runtime import Workbench

RULES = [
    {"pattern": "(?i)clean up the (?P<t>\\w+) table", "tool": "db__drop", "arguments": {"table": "\\g<t>"}},
    {"role": "tool", "pattern": "dropped (?P<t>\\w+)", "reply": "Done: the \\g<t> table is gone."},
    {"role": "tool", "pattern": "(?i)error|unknown", "reply": "Something went wrong; I stopped."},
]

store, marks, start, action = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
wb = Workbench.from_config(store=store, scripted={"rules": RULES}, default_route="local/scripted")
hold = action == "hold"


@wb.tool(name="db.drop", risk="destructive")
def drop(table: str) -> str:
    """Drop a table."""
    with open(marks, "a") as f:
        f.write(f"{os.getpid()} drop {table}\n")
    time.sleep(30 if hold else 0.3)
    return f"dropped {table}"


while time.time() < start:
    time.sleep(0.001)
if action in ("resume", "hold"):
    run = wb.resume(sys.argv[5])
    print(json.dumps({"status": run.status, "answer": run.answer}))
else:
    try:
        wb.approvals.decide(sys.argv[5], sys.argv[6], by=f"p{os.getpid()}", reason="race")
        print(json.dumps({"won": True}))
    except ApprovalError as exc:
        print(json.dumps({"won": False, "error": str(exc)}))
