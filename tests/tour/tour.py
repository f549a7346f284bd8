"""Run the tour as a user does: every notebook in order, on the one store ``workbench.toml`` names.

    python tests/tour/tour.py [--twice] [--copy]     # --copy: in a temporary copy of the repo

Prints each cell that raised without a ``raises-exception`` tag and, with ``--twice``, each
output that differs between the two runs (after the ``notebooks/sanitize.cfg`` replacements).
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


Cell = tuple[int, list[str], bool, bool, bool]  # index, outputs, raised, tagged raises-exception, compared


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
    """Execute every notebook under ``root/notebooks`` in order: per notebook, each code cell."""
    clean = sanitizers()
    results: dict[str, list[Cell]] = {}
    for path in sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
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
            cells.append((i, outputs, raised, "raises-exception" in tags, not tags & UNCOMPARED))
        results[path.name] = cells
    return results


def problems(first: dict, second: dict | None = None) -> list[str]:
    """Untagged cells that raised (in either run), and outputs that differ between the runs."""
    out = []
    for run_no, results in enumerate([first, second] if second else [first], 1):
        for name, cells in results.items():
            out += [
                f"run {run_no}: {name} cell {i} raised: {outputs[-1][:300]}"
                for i, outputs, raised, tagged, _ in cells
                if raised and not tagged
            ]
    if second:
        for name, cells in first.items():
            for (i, a, _, _, compared), (_, b, _, _, _) in zip(cells, second[name], strict=True):
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
