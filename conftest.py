"""Test-run settings shared by pytest and the notebook kernels nbval starts.

Every run records into a fresh store, so the tour notebooks compare the same on
every run; kernels inherit these variables from the pytest process.
"""

import os
import tempfile

_run_dir = tempfile.mkdtemp(prefix="workbench-tests-")
os.environ["WORKBENCH_STORE"] = os.path.join(_run_dir, "notebooks.db")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["JUPYTER_PLATFORM_DIRS"] = "1"
os.environ.pop("WORKBENCH_MODE", None)
os.environ.pop("WORKBENCH_CONFIG", None)
