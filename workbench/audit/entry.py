"""What every audit entry carries: who wrote it (user, host, notebook), with secrets redacted.

The store calls :func:`entry_payload` inside the transaction of the event it audits, so
the entry and the event commit together or not at all.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
from functools import lru_cache
from typing import Any

from workbench.guardrails.scanners import scrub_values
from workbench.store.jsontext import encoder


@lru_cache(maxsize=1)
def actor() -> dict[str, str | None]:
    """The operating-system user, the host and (in a kernel) the notebook this process runs."""
    try:
        os_user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name on this system
        os_user = "unknown"
    return {"os_user": os_user, "host": socket.gethostname(), "notebook": notebook_path()}


def notebook_path() -> str | None:
    """The notebook of this kernel, when Jupyter says (``JPY_SESSION_NAME``, VS Code's ``__vsc_ipynb_file__``)."""
    path = os.environ.get("JPY_SESSION_NAME")
    if path:
        return path
    ipython = sys.modules.get("IPython")  # not imported: not in a kernel, and no need to pay for importing it
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        return shell.user_ns.get("__vsc_ipynb_file__") or shell.user_ns.get("__session__")
    return None


def entry_payload(
    payload: dict[str, Any], who: dict[str, Any] | None = None, bind: list[dict[str, Any]] | None = None
) -> str:
    """The JSON text hashed into the chain: the event, scrubbed, with ``who`` wrote it and the rows it binds."""
    who = {**actor(), **{k: v for k, v in (who or {}).items() if v is not None}}
    body = scrub_values({**payload, "who": who})  # (who too: a notebook's path)
    if bind:
        body["bind"] = bind
    return _encode(body)


_encode = encoder(sort_keys=True, default=str)  # json.dumps(..., sort_keys=True, default=str), built once
