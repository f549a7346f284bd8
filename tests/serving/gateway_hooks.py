"""Callbacks the test LiteLLM Proxy loads (copied next to its config): what it saw, and refusals like its own.

``seen`` writes, per answered call, the end user and tags the proxy read from the request
(``WB_SEEN`` names the file). ``policy`` refuses as the proxy's own limits do, through the
proxy's own error path: end user ``over-rpm`` gets a 429, ``over-budget`` a budget refusal
(the proxy's per-user budgets need its database, which a test machine does not have).
"""

import json
import os

from litellm.integrations.custom_logger import CustomLogger


class Seen(CustomLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        meta = (kwargs.get("litellm_params") or {}).get("metadata") or {}
        row = {"user": kwargs.get("user"), "tags": meta.get("tags"), "cost": kwargs.get("response_cost")}
        with open(os.environ["WB_SEEN"], "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, default=str) + "\n")


class Policy(CustomLogger):
    async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):
        import litellm
        from fastapi import HTTPException

        if data.get("user") == "over-rpm":
            raise HTTPException(status_code=429, detail={"error": "rpm limit reached for end user over-rpm: 3/min"})
        if data.get("user") == "over-budget":
            raise litellm.BudgetExceededError(
                current_cost=5.2, max_budget=5.0, message="Budget has been exceeded! End user over-budget: 5.2 of 5.0"
            )
        return data


seen = Seen()
policy = Policy()
