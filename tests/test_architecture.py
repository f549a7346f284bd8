"""docs/architecture.md stays true: its import table is exactly the code's run-time imports."""

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "workbench"


def _runtime_imports(tree: ast.AST) -> list[str]:
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    names = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "workbench":
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.split(".")[0] == "workbench"]
    return names


def code_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        source = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for module in _runtime_imports(ast.parse(path.read_text())):
            parts = module.split(".")
            target = parts[1] if len(parts) > 1 else "__init__"
            if target != source:
                edges[source].add(target)
    return dict(edges)


def documented_edges() -> dict[str, set[str]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    [block] = re.findall(r"```imports\n(.*?)```", text, re.S)
    edges = {}
    for line in block.strip().splitlines():
        source, _, targets = line.partition(" -> ")
        edges[source.strip()] = {t.strip() for t in targets.split(",")}
    return edges


def test_import_table_matches_the_code():
    code, doc = code_edges(), documented_edges()
    undocumented = {k: sorted(v - doc.get(k, set())) for k, v in code.items() if v - doc.get(k, set())}
    stale = {k: sorted(v - code.get(k, set())) for k, v in doc.items() if v - code.get(k, set())}
    assert not undocumented, f"imports not in docs/architecture.md (add them, or remove the import): {undocumented}"
    assert not stale, f"docs/architecture.md lists imports the code no longer has: {stale}"


def test_faces_and_factors_never_import_upward():
    code = code_edges()
    factors = {"serving", "context", "memory", "integrations", "orchestration", "approvals", "limits", "cost"}
    factors |= {"observability", "guardrails"}
    for low in ("errors", "config", "store", *factors):
        assert "jupyter" not in code.get(low, set()), f"{low} imports the notebook face"
        assert "cli" not in code.get(low, set()), f"{low} imports the CLI"
    for factor in factors:
        assert "runtime" not in code.get(factor, set()), f"{factor} imports runtime at run time"
    assert code["config"] == {"errors"}
