"""A 20-branch workflow run in its own process by test_workflow.py, which kills it mid-run.

Usage: python crash_workflow.py STORE MARKS (run|resume RUN_ID)
Each branch appends its index to MARKS when it runs, so the test can count executions.
"""

import sys
import time

from workbench.runtime import Workbench

store, marks, action = sys.argv[1], sys.argv[2], sys.argv[3]
wb = Workbench.from_config(store=store)
wf = wb.workflow("crash-test", concurrency=4)


@wf.step()
def branches() -> list[int]:
    return list(range(20))


def work(i: int) -> int:
    time.sleep(0.2)
    with open(marks, "a") as f:
        f.write(f"{i}\n")
    return i * i


wf.map("squares", over="branches", fn=work)


@wf.step()
def total(squares: list[int]) -> int:
    return sum(squares)


run = wf.run() if action == "run" else wf.resume(sys.argv[4])
print(run.id, run.status, run.results.get("total"))
