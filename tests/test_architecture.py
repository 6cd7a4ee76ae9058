"""The tree is the architecture: guards that keep it so (docs/design.md).

- No import circles among the modules of selm/, app/ and train/ (and app.py), counting every
  import: at module level, inside functions, under TYPE_CHECKING.
- Dependencies point one way, app -> selm <- train: nothing in selm imports train, app or gradio.
- selm/ has at most 10 modules beside its subpackages; no file in selm/, app/ or train/ is over
  400 lines and no function over 80.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("selm", "app", "train")
MAX_TOP_LEVEL_MODULES = 10
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80


def modules(root: Path) -> dict[str, Path]:
    """{dotted module name: file} of every package under `root` in PACKAGES, plus app.py (as
    `app_main`: the launcher, not the package)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    if (root / "app.py").is_file():
        found["app_main"] = root / "app.py"
    return found


def imported_names(path: Path, module: str) -> set[str]:
    """Every dotted name `path` imports, anywhere in the file (relative imports resolved);
    `from a import b` gives `a.b`, which is module a.b when there is one, else a name in a."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def import_graph(root: Path) -> dict[str, set[str]]:
    """{module: the modules of the tree it imports}; a name resolves to the longest module
    name it starts with."""
    found = modules(root)
    graph = {}
    for module, path in found.items():
        targets = set()
        for name in imported_names(path, module):
            while name and name not in found:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def long_functions(path: Path, limit: int, root: Path = ROOT) -> list[str]:
    """'file:line name (n lines)' for every function (decorators included) over `limit`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - first + 1
            if length > limit:
                out.append(f"{path.relative_to(root)}:{first} {node.name} ({length} lines)")
    return out


# --- the checks on this repository ---


def test_no_import_circles_anywhere():
    found = cycles(import_graph(ROOT))
    assert not found, f"import circles (lazy imports count too): {found}"


def test_selm_imports_neither_train_nor_app_nor_gradio():
    found = modules(ROOT)
    bad = {
        module: sorted(
            name
            for name in imported_names(path, module)
            if name.split(".")[0] in ("train", "app", "gradio", "app_main")
        )
        for module, path in found.items()
        if module.split(".")[0] == "selm"
    }
    assert not {m: names for m, names in bad.items() if names}


def test_selm_has_few_top_level_modules():
    top = sorted(p.name for p in (ROOT / "selm").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"{len(top)} modules beside the subpackages: {top}"


def test_no_file_too_long():
    files = [*modules(ROOT).values()]
    long = {
        str(p.relative_to(ROOT)): n
        for p in files
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    }
    assert not long, f"files over {MAX_FILE_LINES} lines: {long}"


def test_no_function_too_long():
    long = [f for p in modules(ROOT).values() for f in long_functions(p, MAX_FUNCTION_LINES)]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}"


# --- the checkers themselves, on a made-up tree ---


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in PACKAGES:
        (root / package).mkdir(exist_ok=True)
    return root


def test_a_circle_hidden_in_a_function_is_found(tmp_path):
    root = _tree(
        tmp_path,
        {
            "selm/__init__.py": "",
            "selm/a.py": "from selm.b import thing\n",
            "selm/b.py": "def thing():\n    from selm import a\n    return a\n",
            "selm/c.py": "import selm.a\n",
        },
    )
    assert cycles(import_graph(root)) == [["selm.a", "selm.b"]]


def test_a_circle_through_relative_and_type_checking_imports_is_found(tmp_path):
    root = _tree(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/ui.py": "from .events import on_run\n",
            "app/events.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from app.ui import X\n"
            ),
        },
    )
    assert cycles(import_graph(root)) == [["app.events", "app.ui"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


def test_long_functions_are_measured_with_their_decorators(tmp_path):
    path = tmp_path / "f.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(79))
    path.write_text(f"@staticmethod\ndef f():\n{body}\n")  # 81 lines with the decorator
    assert long_functions(path, 80, tmp_path) == ["f.py:1 f (81 lines)"]
    assert long_functions(path, 81, tmp_path) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_is_scanned(package):
    assert any(m.split(".")[0] == package for m in modules(ROOT))
