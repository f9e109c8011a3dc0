"""The layers above the core (the exporters, the CLI, the pytest plugin, the OpenTelemetry
instrumentor, the testing helpers, the subprocess hook) use the core through its public
API only: ``tracethread/_core/api.py``. Found by reading the source: every import of a core
module other than ``api`` (absolute or relative, at module level or inside a function), and
every use of a name bound to one (``detect.graph``, ``detect.context = ...``), is named by
file and line; so is an assignment to an attribute of ``api`` itself (a core global set
from above)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "tracethread"
CORE = "tracethread._core"
CORE_MODULES = {p.stem for p in (PKG / "_core").glob("*.py")} - {"__init__"}

ABOVE = sorted((PKG / "exporters").rglob("*.py")) + [
    PKG / name for name in ("cli.py", "pytest_plugin.py", "otel_instrumentor.py",
                            "testing.py", "_child.py")]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    """The module an ``ImportFrom`` names, relative forms resolved against ``path``."""
    if not node.level:
        return node.module or ""
    package = _module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _is_api(module: str) -> bool:
    return module == f"{CORE}.api" or module.startswith(f"{CORE}.api.")


def layer_violations(path: Path) -> list[str]:
    """``file:line: what`` for every use of the core other than through ``api``."""
    tree = ast.parse(path.read_text(), str(path))
    where = path.relative_to(ROOT)
    out = []
    core_names: dict[str, str] = {}   # name -> the core module (not api) it is bound to
    api_names: set[str] = set()       # names bound to the api module

    def bad(node: ast.AST, what: str) -> None:
        out.append(f"{where}:{node.lineno}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = _absolute(path, node)
            for alias in node.names:
                bound = alias.asname or alias.name
                full = f"{module}.{alias.name}"
                if module == "tracethread" and alias.name == "_core":
                    bad(node, f"imports {CORE}")
                    core_names[bound] = CORE
                elif module == CORE and alias.name == "api":
                    api_names.add(bound)
                elif module == CORE:
                    bad(node, f"imports {full} (not through api)")
                    if alias.name in CORE_MODULES:
                        core_names[bound] = full
                elif module.startswith(f"{CORE}.") and not _is_api(module):
                    bad(node, f"imports {alias.name} from {module} (not through api)")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.name
                if (name == CORE or name.startswith(f"{CORE}.")) and not _is_api(name):
                    bad(node, f"imports {name} (not through api)")
                    if alias.asname:
                        core_names[alias.asname] = name
                elif _is_api(name) and alias.asname:
                    api_names.add(alias.asname)

    parents = {child: parent for parent in ast.walk(tree)
               for child in ast.iter_child_nodes(parent)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in core_names:
            parent = parents.get(node)
            if isinstance(parent, ast.Attribute) and parent.value is node:
                verb = "reads" if isinstance(parent.ctx, ast.Load) else "assigns"
                bad(node, f"{verb} {node.id}.{parent.attr} ({core_names[node.id]})")
            else:
                bad(node, f"uses {node.id} ({core_names[node.id]})")
        elif (isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Load) and
              isinstance(node.value, ast.Name) and node.value.id in api_names):
            bad(node, f"assigns {node.value.id}.{node.attr} (a global of the core's api)")
        elif (isinstance(node, ast.Attribute) and node.attr == "_core" and
              isinstance(node.value, ast.Name) and node.value.id == "tracethread"):
            parent = parents.get(node)
            if not (isinstance(parent, ast.Attribute) and parent.attr == "api"):
                bad(node, "reaches into tracethread._core (not through api)")
    return sorted(out, key=lambda v: int(v.split(":")[1]))


def test_the_layers_above_the_core_use_only_its_api():
    missing = [str(p.relative_to(ROOT)) for p in ABOVE if not p.exists()]
    assert not missing, f"gone: {missing}"
    wrong = [v for path in ABOVE for v in layer_violations(path)]
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_every_form(tmp_path):
    """Absolute and relative imports, function-local ones, and the uses they bind."""
    pkg = tmp_path / "tracethread" / "exporters" / "sub"
    pkg.mkdir(parents=True)
    probe = pkg / "probe.py"
    probe.write_text(
        "from ..._core import api as core\n"              # 1: fine
        "from tracethread._core import api\n"              # 2: fine
        "from ..._core import detect\n"                     # 3
        "import tracethread._core.watchdog as wd\n"         # 4
        "def f():\n"
        "    from tracethread._core.recorder import flush\n"  # 6
        "    detect.context = 'x'\n"                        # 7
        "    return wd.states, core.graph_stats()\n"        # 8: wd only
        "def g():\n"
        "    core.fatal_hooks = []\n"                       # 10
        "    from tracethread import _core\n"               # 11
        "    import tracethread\n"
        "    return tracethread._core.detect.graph, tracethread._core.api.flush\n")  # 13
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        got = layer_violations(probe)
    finally:
        ROOT = saved
    lines = sorted(int(v.split(":")[1]) for v in got)
    assert lines == [3, 4, 6, 7, 8, 10, 11, 13], "\n".join(got)
    assert any("assigns detect.context" in v for v in got)
