"""ARCHITECTURE.md against the tree: the paths it names exist, it names every package, and the
import rules it states hold (read from its tables, so changing the code without the page fails).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "ARCHITECTURE.md").read_text()
CODE_DIRS = ("basis_core", "adapters", "ext")
#: importable top-level names of the project -> their folder
TOP = {"basis_core": "basis_core", "adapters": "adapters", "basis_ext": "ext"}
PATH_RE = re.compile(r"\b(?:basis_core|adapters|ext|perf|tests|scripts|examples)/[\w.<>*/-]*")


def _section(title: str) -> str:
    start = PAGE.index(f"\n## {title}\n")
    end = PAGE.find("\n## ", start + 1)
    return PAGE[start : None if end < 0 else end]


def _ticked(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _table(section: str, header: str) -> list[tuple[list[str], list[str]]]:
    """Rows (paths of the first column, paths of the second) of the table whose header starts so."""
    lines = section.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[at + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((_ticked(cells[0]), _ticked(cells[1])))
    return rows


RULES = _table(_section("What may import what"), "| modules | may import from the project")
EXCEPTIONS = _table(_section("What may import what"), "| module | also imports | why")


def _covers(rule: str, rel: str) -> bool:
    return rel.startswith(rule) if rule.endswith("/") else rel == rule


def _sources() -> list[Path]:
    out = []
    for d in CODE_DIRS:
        for p in sorted((ROOT / d).rglob("*")):
            if "__pycache__" not in p.parts and p.suffix in (".py", ".pyx", ".pyi"):
                out.append(p)
    return out


def _target_path(module: str) -> str | None:
    """The file of a project module (`basis_core.state.tables` -> basis_core/state/tables.py);
    None for anything outside the project."""
    parts = module.split(".")
    if parts[0] not in TOP:
        return None
    base = ROOT / TOP[parts[0]] / Path(*parts[1:]) if len(parts) > 1 else ROOT / TOP[parts[0]]
    if (base / "__init__.py").exists():
        return (base / "__init__.py").relative_to(ROOT).as_posix()
    for suffix in (".py", ".pyx"):
        if base.with_suffix(suffix).exists():
            return base.with_suffix(suffix).relative_to(ROOT).as_posix()
    return f"{base.relative_to(ROOT).as_posix()}.py"  # missing: reported as such by the rules


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the nodes under `if TYPE_CHECKING:` (imports for annotations, never executed)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return out


def _imports(path: Path, runtime_only: bool = False) -> list[tuple[int, str]]:
    """(line, imported project module) of every import in a module, function-level ones too;
    with `runtime_only`, not those under `if TYPE_CHECKING:`."""
    rel = path.relative_to(ROOT)
    if path.suffix == ".pyx":  # Cython: no AST here, the import lines are plain
        found = re.findall(r"^\s*(?:from|import|cimport)\s+([\w.]+)", path.read_text(), re.M)
        return [(0, m) for m in found if m.split(".")[0] in TOP]
    package = [TOP.get(rel.parts[0], rel.parts[0]), *rel.parts[1:-1]]
    if rel.parts[0] == "ext":
        package = ["basis_ext"]
    out = []
    tree = ast.parse(path.read_text())
    skip = _type_checking_only(tree) if runtime_only else set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for a in node.names:  # `from .. import schema` imports the module basis_core.schema
                sub = f"{module}.{a.name}"
                target = _target_path(sub)
                is_module = target is not None and (ROOT / target).exists()
                out.append((node.lineno, sub if is_module else module))
    return [(line, m) for line, m in out if m.split(".")[0] in TOP]


def _rule_for(rel: str) -> tuple[str, list[str]] | None:
    best = None
    for subjects, allowed in RULES:
        for s in subjects:
            if _covers(s, rel) and (best is None or len(s) > len(best[0])):
                best = (s, allowed)
    return best


EDGES = {
    p.relative_to(ROOT).as_posix(): [(line, m, _target_path(m)) for line, m in _imports(p)]
    for p in _sources()
}


def test_every_path_the_page_names_exists():
    missing = []
    for token in sorted(set(PATH_RE.findall(PAGE))):
        pattern = re.sub(r"<[^>]*>", "*", token.rstrip("."))
        if not (list(ROOT.glob(pattern)) if "*" in pattern else (ROOT / pattern).exists()):
            missing.append(token)
    assert not missing, f"ARCHITECTURE.md names paths that do not exist: {missing}"


def test_module_names_in_each_folder_entry_exist():
    """In "Where things live", an entry that starts with a folder names files of that folder."""
    entries = re.split(r"\n(?=- |\n)", _section("Where things live"))
    missing = []
    for entry in entries:
        ticks = _ticked(entry)
        if not ticks or not ticks[0].endswith("/"):
            continue
        folder = ticks[0]
        for name in ticks[1:]:
            if re.fullmatch(r"\w+\.(py|pyx|toml)", name) and not (ROOT / folder / name).exists():
                missing.append(folder + name)
    assert not missing, f"ARCHITECTURE.md's 'Where things live' names missing files: {missing}"


def test_every_package_is_named():
    packages = sorted(
        p.parent.relative_to(ROOT).as_posix() + "/"
        for d in CODE_DIRS
        for p in (ROOT / d).rglob("__init__.py")
        if "__pycache__" not in p.parts
    )
    assert "basis_core/engine/" in packages
    unnamed = [p for p in packages if f"`{p}`" not in PAGE]
    assert not unnamed, f"packages not named in ARCHITECTURE.md: {unnamed}"


def test_rules_are_read_from_the_page():
    assert len(RULES) >= 10 and len(EXCEPTIONS) >= 1
    assert any("basis_core/kernels/" in subjects for subjects, _ in RULES)


def test_every_module_falls_under_a_rule():
    uncovered = [rel for rel in EDGES if _rule_for(rel) is None]
    assert not uncovered, f"modules no import rule in ARCHITECTURE.md covers: {uncovered}"


def _allowed(rel: str, target: str) -> bool:
    rule = _rule_for(rel)
    if rule is None:
        return False
    subject, allowed = rule
    if _covers(subject, target) or any(_covers(a, target) for a in allowed):
        return True
    return any(
        _covers(s, rel) and any(_covers(a, target) for a in also)
        for subjects, also in EXCEPTIONS
        for s in subjects
    )


def test_imports_follow_the_rules():
    broken = [
        f"{rel}:{line} imports {module} ({target})"
        for rel, edges in EDGES.items()
        for line, module, target in edges
        if target is not None and not _allowed(rel, target)
    ]
    assert not broken, "imports that ARCHITECTURE.md's rules forbid:\n" + "\n".join(broken)


@pytest.mark.parametrize("subjects,also", EXCEPTIONS, ids=[" ".join(s) for s, _ in EXCEPTIONS])
def test_each_stated_exception_is_still_in_use(subjects, also):
    for target_rule in also:
        used = any(
            target is not None and _covers(target_rule, target)
            for rel, edges in EDGES.items()
            if any(_covers(s, rel) for s in subjects)
            for _, _, target in edges
        )
        assert used, (
            f"ARCHITECTURE.md lists {subjects} importing {target_rule}, but nothing does: drop the row"
        )


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _runtime_graph() -> dict[str, set[str]]:
    """Module file -> the project module files it imports when it runs (function-level imports
    included, annotation-only imports not; a package's own __init__ is not an edge of its modules,
    which Python has already started importing)."""
    graph: dict[str, set[str]] = {}
    for p in _sources():
        if p.suffix != ".py":
            continue
        rel = p.relative_to(ROOT).as_posix()
        own_init = (p.parent / "__init__.py").relative_to(ROOT).as_posix()
        targets = {_target_path(m) for _, m in _imports(p, runtime_only=True)}
        graph[rel] = {t for t in targets if t is not None and t != rel and t != own_init}
    return graph


def test_the_import_graph_has_no_cycle():
    cycles = _cycles(_runtime_graph())
    assert not cycles, "modules that import each other (directly or around a loop):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_cycle_check_finds_a_loop():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_rule_check_catches_a_forbidden_import():
    assert not _allowed("basis_core/kernels/scan.py", "basis_core/engine/core.py")
    assert not _allowed("adapters/sim/venue.py", "basis_core/engine/io.py")
    assert not _allowed("basis_core/engine/io.py", "adapters/sim/world.py")
    assert _allowed("basis_core/engine/scenario.py", "adapters/sim/world.py")
    assert _allowed("basis_core/kernels/scan.py", "basis_core/kernels/book.py")


def test_cited_documents_and_sections_exist():
    """A `NAME.md` named in code or docs exists, and `ARCHITECTURE.md, "Title"` names a section."""
    texts = [ROOT / "README.md", ROOT / "pyproject.toml", *(ROOT / "perf").rglob("*.md")]
    texts += [p for d in (*CODE_DIRS, "perf", "tests") for p in (ROOT / d).rglob("*.py")]
    missing = []
    for path in texts:
        if "__pycache__" in path.parts or path == Path(__file__).resolve():
            continue
        text = path.read_text()
        for name in set(re.findall(r"\b[\w/.-]*[A-Z][A-Z_]+\.md\b", text)):
            if not ((ROOT / name).exists() or (path.parent / name).exists()):
                missing.append(f"{path.relative_to(ROOT)}: {name}")
        for title in re.findall(r'ARCHITECTURE\.md, "([^"]+)"', text):
            if f"\n## {title}\n" not in PAGE:
                missing.append(f'{path.relative_to(ROOT)}: ARCHITECTURE.md section "{title}"')
    assert not missing, "cited documents or sections that do not exist:\n" + "\n".join(missing)


def test_package_docstrings_list_their_modules():
    """A package docstring that lists modules (`name.py`) lists exactly the package's modules."""
    wrong = []
    for d in CODE_DIRS:
        for init in sorted((ROOT / d).rglob("__init__.py")):
            doc = ast.get_docstring(ast.parse(init.read_text())) or ""
            rel = init.parent.relative_to(ROOT).as_posix()
            paths = re.findall(r"\b(?:\w+/)+\w+\.py\b", doc)  # repository paths: they must exist
            wrong += [f"{rel}: names {p}, which does not exist" for p in paths if not (ROOT / p).exists()]
            named = set(re.findall(r"(?<![\w/])(\w+)\.py\b", doc))
            if not named:
                continue
            have = {p.stem for p in init.parent.glob("*.py")} - {"__init__", "__main__"}
            wrong += [f"{rel}: names {n}.py, which does not exist" for n in sorted(named - have)]
            wrong += [f"{rel}: does not list {n}.py" for n in sorted(have - named)]
    assert not wrong, "package docstrings out of step with their folders:\n" + "\n".join(wrong)


def test_cited_benchmark_results_exist():
    """Every timestamped pyperf JSON (or pattern of them) that the docs and suites quote is in
    perf/results/, which the repository keeps for that reason."""
    texts = [ROOT / "README.md", ROOT / "perf" / "README.md", *(ROOT / "perf").rglob("*.py")]
    cited = set()
    for path in texts:
        cited |= {(path, n) for n in re.findall(r"[\w*\[\]-]*-2\d{7}T[\w*\[\]]*\.json", path.read_text())}
    assert any(n.startswith("e2e-") for _, n in cited)
    missing = [
        f"{p.relative_to(ROOT)}: {n}" for p, n in sorted(cited) if not list((ROOT / "perf/results").glob(n))
    ]
    assert not missing, "quoted benchmark results missing from perf/results/:\n" + "\n".join(missing)
    assert "perf/results" not in (ROOT / ".gitignore").read_text()
