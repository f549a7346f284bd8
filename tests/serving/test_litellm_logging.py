"""litellm's post-call success logging runs only when someone listens: a user's callback always sees every call,
and with none configured the background work (which slowed the store's writes) is skipped.
"""

import time

import pytest

from workbench.serving.router import _LISTENERS, litellm_module


@pytest.fixture
def handled(monkeypatch):
    """How many times litellm's success handler ran (it runs on a background thread)."""
    from litellm.litellm_core_utils.litellm_logging import Logging

    runs: list[int] = []
    original = Logging.success_handler

    def counted(self, *args, **kwargs):
        runs.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Logging, "success_handler", counted)
    return runs


def test_without_a_litellm_callback_its_success_logging_is_skipped(wb, handled):
    litellm_module()
    for i in range(5):
        assert wb.ask(f"q{i}", model="local/echo").text
    time.sleep(0.3)  # the handler would have run by now
    assert handled == []
    assert wb.calls.df().shape[0] == 5 and (wb.calls.df()["cost_usd"] == 0).all()  # recorded and priced regardless


def test_a_users_litellm_callback_still_sees_every_call(wb, handled, monkeypatch):
    from litellm.integrations.custom_logger import CustomLogger

    litellm = litellm_module()
    seen: list[str] = []

    class Listener(CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time):
            seen.append(kwargs.get("model"))

    for name in _LISTENERS:  # litellm copies a callback into these on the next call: restore them all after
        monkeypatch.setattr(litellm, name, list(getattr(litellm, name)))
    monkeypatch.setattr(litellm, "callbacks", [Listener()])
    for i in range(3):
        wb.ask(f"q{i}", model="local/echo")
    deadline = time.monotonic() + 5
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(seen) == 3 and len(handled) == 3
