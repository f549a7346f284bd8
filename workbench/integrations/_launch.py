"""Start a stdio MCP server so the workbench can always stop it, and it can't outlive the workbench.

    python -m workbench.integrations._launch PIDFILE COMMAND [ARGS...]

The MCP SDK starts this in a new session (process group). It writes its pid to PIDFILE —
which is also the group id of the server and of anything the server starts — asks Linux
to SIGKILL it when the thread that started it ends (``PR_SET_PDEATHSIG``: a kernel killed
with ``kill -9`` takes its servers with it), then becomes the server (``exec``), same pid.
The client kills the whole group on a timeout and on ``close()``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> None:
    pidfile, command, *args = argv
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the client still kills the group
            pass
        if os.getppid() == 1:  # the client died before the line above took effect
            sys.exit(1)
    with open(pidfile, "w") as fh:
        fh.write(str(os.getpid()))
    os.execvp(command, [command, *args])


if __name__ == "__main__":
    main(sys.argv[1:])
