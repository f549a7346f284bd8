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
