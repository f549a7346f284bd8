"""A bare model name is checked against litellm's bundled price map without importing litellm (seconds)."""

import json
import subprocess
import sys


def test_a_typo_is_named_at_once_and_a_known_name_passes_without_importing_litellm(tmp_path):
    code = (
        "import sys, time; from workbench.runtime import Workbench; from workbench import UnknownModel\n"
        f"wb = Workbench.from_config(store={str(tmp_path / 'w.db')!r})\n"
        "t = time.perf_counter()\n"
        "try: wb.ask('hi', model='gpt-4o-mni')\n"
        "except UnknownModel as e: print(str(e).split(':')[0])\n"
        "print(wb.resolve('gpt-4o-mini')[0], 'litellm' in sys.modules, time.perf_counter() - t < 1.5)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["unknown model or route 'gpt-4o-mni'", "gpt-4o-mini False True"]


def test_the_bundled_map_answers_as_litellm_does():
    code = (
        "import json, random; from workbench.serving import catalog\n"
        "bare = sorted(n for n in catalog.bundled_names() if '/' not in n); random.seed(3)\n"
        "typos = [n[:-1] for n in random.sample(bare, 300)] + [n + 'x' for n in random.sample(bare, 300)]\n"
        "sample = bare + typos + ['fallback_generalizations', 'sample_spec', 'gpt-4o-mni']\n"
        "ours = [catalog.knows_bare_name(n) for n in sample]\n"
        "import litellm\n"
        "print(json.dumps([ours, [n in litellm.model_cost for n in sample]]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    ours, theirs = json.loads(out)
    assert len(ours) > 300 and ours == theirs  # (each computed before litellm was imported)
    assert True in ours and False in ours


def test_a_price_litellm_could_not_find_is_known_without_importing_it_and_never_a_price_it_finds():
    """``catalog.may_price`` says False only where litellm's ``completion_cost`` raises: over names made from every
    kind of map entry (cut, misspelt, dated, upper-cased, under ``openai/``, nested providers, random text), each
    with the server reporting another such name. A server reporting a ``usage.cost`` is billed by litellm: True.
    """
    code = r"""
import json, random, sys
from workbench.serving import catalog
rng = random.Random(11)
names = sorted(catalog.bundled_names())
def made(n):
    op = rng.randrange(6)
    if op == 0: return n[: rng.randrange(1, len(n) + 1)]
    if op == 1: i = rng.randrange(len(n)); return n[:i] + rng.choice("xq-_.9") + n[i + 1:]
    if op == 2: return n.rsplit("/", 1)[-1]
    if op == 3: return f"{n}-{rng.randrange(2020, 2030)}0101"
    if op == 4: return "".join(rng.choice("abcdefghijklmnop-_./0123BQ") for _ in range(rng.randrange(3, 14)))
    return n.upper()
def answer(model, reported, **usage):
    return {"id": "x", "object": "chat.completion", "created": 0, "model": reported,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, **usage}}
cases = [("openai/chaos", "chaos"), ("openai/llama-local", "llama-local"), ("openai/gpt-4o-mini", "gpt-4o-mini")]
for _ in range(1200):
    a, b = made(rng.choice(names)), made(rng.choice(names))
    cases.append(("openai/" + a, rng.choice([a, b])))
ours = [catalog.may_price(m, answer(m, r)) for m, r in cases]
billed = catalog.may_price("openai/chaos", answer("openai/chaos", "chaos", cost=0.5))
before = catalog.may_price("openai/chaos"), catalog.may_price("anthropic/chaos"), catalog.may_price("openai/gpt-4o")
assert "litellm" not in sys.modules
import litellm, logging
logging.disable(logging.CRITICAL)
def priced(m, r, **usage):
    try:
        return litellm.completion_cost(completion_response=answer(m, r, **usage), model=m)
    except Exception:
        return None
found = [(m, r, priced(m, r)) for (m, r), maybe in zip(cases, ours) if not maybe]
wrong = [[m, r, cost] for m, r, cost in found if cost is not None]
print(json.dumps([ours.count(False), ours.count(True), wrong, billed, priced("openai/chaos", "chaos", cost=0.5),
                  before]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    unpriced, maybe, wrong, billed, billed_cost, before = json.loads(done.stdout.strip().splitlines()[-1])
    assert wrong == []  # no call litellm prices is ever recorded as unpriced
    assert unpriced > 80 and maybe > 800  # both answers are given, over many names
    assert billed is True and billed_cost == 0.5
    assert before == [False, True, True]  # before the call: the name alone; other providers always go to litellm
