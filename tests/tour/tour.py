"""Run the tour as a user does: every notebook in order, on the one store ``workbench.toml`` names.

    python tests/tour/tour.py [--twice] [--copy]     # --copy: in a temporary copy of the repo

Prints each cell that raised without a ``raises-exception`` tag, each whose outputs differ from
the notebook's committed ones as nbval compares them (``pytest --nbval``: every output field but
images, after the ``notebooks/sanitize.cfg`` replacements), and, with ``--twice``, each output
that differs between the two runs.
"""

from __future__ import annotations

import argparse
import configparser
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbval.plugin import coalesce_streams, transform_streams_for_comparison

ROOT = Path(__file__).resolve().parents[2]
COPIED = (
    "notebooks",
    "contexts",
    "evals",
    "extensions",
    "workbench.toml",
    "scripted.toml",
    "tests/data/guard_corpus.jsonl",
)
UNCOMPARED = {"nbval-ignore-output", "nbval-skip"}  # what nbval does not compare, neither does the second run
# What nbval leaves out of a comparison (its skip_compare, images included as without --nbdime).
NBVAL_SKIPPED = {
    "metadata",
    "traceback",
    "prompt_number",
    "output_type",
    "name",
    "execution_count",
    "application/vnd.jupyter.widget-view+json",
    "image/png",
    "image/jpeg",
}


def sanitizers() -> list[tuple[re.Pattern[str], str]]:
    """The (regex, replacement) pairs of notebooks/sanitize.cfg, as nbval applies them."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "notebooks" / "sanitize.cfg")
    return [(re.compile(cfg[s]["regex"]), cfg[s]["replace"]) for s in cfg.sections()]


def copy_repo(into: Path) -> Path:
    """The files the tour reads, copied (its store, .workbench/, is not)."""
    for name in COPIED:
        src = ROOT / name
        (into / name).parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, into / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        else:
            shutil.copy2(src, into / name)
    return into


def _text(output: dict, clean: list[tuple[re.Pattern[str], str]]) -> str:
    kind = output["output_type"]
    if kind == "stream":
        text = output["text"]
    elif kind == "error":
        text = f"{output['ename']}: {output['evalue']}"
    else:
        data = output.get("data", {})
        text = data.get("text/plain", "") if "application/vnd.jupyter.widget-view+json" not in data else "<widget>"
    for rx, replacement in clean:
        text = rx.sub(replacement, text)
    return f"{kind}: {text}"


Cell = tuple[int, list[str], bool, bool, bool, str]  # index, outputs, raised, tagged raises-exception, compared,
# and how the outputs differ from the committed ones ("" where they do not)


def _nbval_view(outputs: list, clean: list[tuple[re.Pattern[str], str]]) -> dict[str, list]:
    """A cell's outputs as nbval compares them: per field (a data's MIME types flattened), the sanitised values."""
    view: dict[str, list] = {}
    for output in transform_streams_for_comparison(coalesce_streams([nbformat.from_dict(o) for o in outputs])):
        fields = {**{k: v for k, v in output.items() if k != "data"}, **output.get("data", {})}
        for key, value in fields.items():
            if key not in NBVAL_SKIPPED:
                if isinstance(value, str):
                    for rx, replacement in clean:
                        value = rx.sub(replacement, value)
                view.setdefault(key, []).append(value)
    return view


def _difference(ran: list, committed: list, clean: list[tuple[re.Pattern[str], str]]) -> str:
    """Where a cell's new outputs differ from its committed ones as nbval sees it ("" where they do not)."""
    new, old = _nbval_view(ran, clean), _nbval_view(committed, clean)
    if new.keys() != old.keys():
        return f"fields {sorted(old)} committed, {sorted(new)} now"
    for key, values in old.items():
        if values != new[key]:
            return f"{key}: committed {str(values)[:600]}, now {str(new[key])[:600]}"
    return ""


def _merged(outputs: list[dict]) -> list[dict]:
    """Consecutive writes to one stream as one output (how they were split is timing, not content)."""
    out: list[dict] = []
    for o in outputs:
        if out and o["output_type"] == "stream" and out[-1]["output_type"] == "stream" and out[-1]["name"] == o["name"]:
            out[-1] = {**out[-1], "text": out[-1]["text"] + o["text"]}
        else:
            out.append(o)
    return out


def run(root: Path, timeout: int = 600) -> dict[str, list[Cell]]:
    """Execute every notebook under ``root/notebooks`` in order: per notebook, each code cell, with how its outputs
    differ from those committed in the notebook.
    """
    clean = sanitizers()
    results: dict[str, list[Cell]] = {}
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        committed = [list(cell.get("outputs", [])) for cell in nb.cells]
        client = NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute()
        cells = []
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            outputs = [_text(o, clean) for o in _merged(cell.get("outputs", []))]
            raised = any(o["output_type"] == "error" for o in cell.get("outputs", []))
            tags = set(cell.get("metadata", {}).get("tags", []))
            compared = not tags & UNCOMPARED
            differs = _difference(cell.get("outputs", []), committed[i], clean) if compared else ""
            cells.append((i, outputs, raised, "raises-exception" in tags, compared, differs))
        results[path.name] = cells
    return results


def problems(first: dict, second: dict | None = None) -> list[str]:
    """Untagged cells that raised (in either run), outputs of the first run that differ from the committed ones
    (as nbval compares them: a fresh store answers as a store the notebooks before it used), and outputs that
    differ between the runs.
    """
    out = []
    for run_no, results in enumerate([first, second] if second else [first], 1):
        for name, cells in results.items():
            out += [
                f"run {run_no}: {name} cell {i} raised: {outputs[-1][:300]}"
                for i, outputs, raised, tagged, _, _ in cells
                if raised and not tagged
            ]
    for name, cells in first.items():
        out += [f"{name} cell {i} differs from its committed outputs: {d}"[:1500] for i, *_, d in cells if d]
    if second:
        for name, cells in first.items():
            for (i, a, _, _, compared, _), (_, b, *_) in zip(cells, second[name], strict=True):
                if compared and a != b:
                    out.append(f"{name} cell {i} differs on the second run:\n  first:  {a}\n  second: {b}"[:1500])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--twice", action="store_true")
    parser.add_argument("--copy", action="store_true")
    args = parser.parse_args()
    root = copy_repo(Path(tempfile.mkdtemp(prefix="wb-tour-"))) if args.copy else ROOT
    os.environ.pop("WORKBENCH_STORE", None)
    first = run(root)
    found = problems(first, run(root) if args.twice else None)
    print("\n".join(found) or "the tour ran clean" + (" twice, the same both times" if args.twice else ""))
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
