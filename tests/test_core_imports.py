"""The core's modules import only downward (the order in tracethread/_core/__init__.py):
every import of one core module by another, at module level or inside a function, is
found by reading the source, and none may go up or sideways — no import cycles, no
function-local import to hide one."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parent.parent / "tracethread" / "_core"

# Bottom to top. A module may import modules of lower layers only.
LAYERS = [
    {"_raw", "_accel", "config", "lockorder", "errors"},
    {"records"},
    {"state"},
    {"summaries"},
    {"stream"},
    {"findings"},
    {"detect"},
    {"watchdog"},
    {"forking", "_native"},
    {"api"},
    {"__init__"},
]


def core_imports(path: Path) -> list:
    """(line, imported core module) for every import in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:          # from .x import y
                out.append((node.lineno, node.module.split(".")[0]))
            elif node.level == 1:                         # from . import x, y
                out += [(node.lineno, a.name) for a in node.names]
            elif node.level == 0 and (node.module or "").startswith("tracethread._core."):
                out.append((node.lineno, node.module.split(".")[2]))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("tracethread._core."):
                    out.append((node.lineno, a.name.split(".")[2]))
    return out


def test_every_core_module_has_a_layer():
    modules = {p.stem for p in CORE.glob("*.py")}
    placed = set().union(*LAYERS)
    assert modules == placed, (f"not placed: {sorted(modules - placed)}; "
                               f"gone: {sorted(placed - modules)}")


def test_core_modules_import_only_downward():
    rank = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    wrong = []
    for path in sorted(CORE.glob("*.py")):
        me = path.stem
        for line, other in core_imports(path):
            if other in rank and rank[other] >= rank[me]:
                wrong.append(f"{path.name}:{line} imports {other} (layer {rank[other]}, "
                             f"not below {me}'s {rank[me]})")
    assert not wrong, "\n".join(wrong)


def test_the_walk_sees_function_local_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from .recorder import flush\n    from . import detect\n")
    assert core_imports(probe) == [(2, "recorder"), (3, "detect")]
