"""The house rules, checked: layers (import-linter), lint (ruff), Streamlit only in the app
package, short functions, one place that knows each model."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.helpers import ROOT

LIBRARY = ROOT / "explorer"


def _run(*args: str) -> subprocess.CompletedProcess:
    """A tool run through this Python (a fresh machine's PATH may lack its scripts)."""
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)


def test_layers_contract_holds():
    """pyproject.toml's import-linter contracts: every explorer package in its layer, each
    importing only from the layers below it; Streamlit nowhere outside explorer/app."""
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())"
    done = _run("-c", code)
    assert done.returncode == 0 and "0 broken" in done.stdout, done.stdout[-3000:] + done.stderr


def test_the_layers_contract_names_every_package():
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in contracts["contracts"] if c["type"] == "layers")
    assert layers["containers"] == ["explorer"] and layers.get("exhaustive") is True
    named = {m.strip() for layer in layers["layers"] for m in layer.split("|")}
    present = {p.stem for p in LIBRARY.glob("*.py") if p.stem != "__init__"}
    present |= {p.name for p in LIBRARY.iterdir() if (p / "__init__.py").is_file()}
    assert named == present


def test_ruff_is_clean():
    done = _run("-m", "ruff", "check", "--output-format", "concise", ".")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr


def _modules():
    for path in sorted(LIBRARY.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def test_no_streamlit_outside_the_app_package():
    """Checked on the source too (import-linter sees imports; this also sees a stray
    ``__import__`` or a string-built import in any module)."""
    offenders = []
    for path, tree in _modules():
        if path.is_relative_to(LIBRARY / "app"):
            continue
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = [node.value] if node.value.startswith("streamlit") else []
            if any(n == "streamlit" or n.startswith("streamlit.") for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders


def _docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0]
    is_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    return first.end_lineno - first.lineno + 1 if is_doc else 0


def test_functions_read_at_one_level():
    """No function of the library over 50 lines (its docstring aside) unless a comment on its
    first line says why (``# long:``)."""
    long = []
    for path, tree in _modules():
        lines = path.read_text().splitlines()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = node.end_lineno - node.lineno + 1 - _docstring_lines(node)
                if size > 50 and "# long:" not in lines[node.lineno - 1]:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({size})")
    assert not long


def test_only_the_registry_knows_model_names():
    """What the code knows about a model lives in its record: nobody else branches on names."""
    patterns = ('startswith("smp-")', 'startswith("deeplabv3', '== "alexnet-classic"')
    found = [
        f"{path.relative_to(ROOT)}: {p}"
        for path in [*LIBRARY.rglob("*.py"), *(ROOT / "pages").glob("*.py")]
        if path != LIBRARY / "models" / "registry.py"
        for p in patterns
        if p in path.read_text()
    ]
    assert not found


def test_the_cli_starts_without_heavy_imports():
    """``python -m explorer stats`` stays fast and the Train page opens without torch: the CLI,
    the job queue and the run-folder reader import no torch, pandas, plotly or streamlit."""
    code = (
        "import sys, explorer.cli, explorer.training.jobs, explorer.training.runs\n"
        "explorer.cli.build_parser()\n"
        "heavy = {'torch', 'pandas', 'plotly', 'streamlit', 'torchvision'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


TASK_HOMES = {
    LIBRARY / "models" / "tasks.py",  # what every layer knows of a task
    LIBRARY / "training" / "tasks.py",  # how a task trains
    LIBRARY / "inference" / "outputs.py",  # what a task's model outputs are
}


def _task_comparisons(tree: ast.AST) -> list[int]:
    """Lines comparing anything with a task's name (``task == "classify"``, ``in ("segment",)``)."""
    from explorer.types import TASKS

    def names(node: ast.AST) -> set[str]:
        consts = [n for n in ast.walk(node) if isinstance(n, ast.Constant)]
        return {c.value for c in consts if isinstance(c.value, str)} & set(TASKS)

    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        and any(names(side) for side in [node.left, *node.comparators])
    ]


def test_no_branch_on_a_task_name_outside_the_task_objects():
    """What differs between tasks is asked of its registered objects (models.tasks,
    training.tasks, inference.outputs): a new task is one object in each, not an edit of every
    file that says ``if task == "classify"``."""
    files = [*LIBRARY.rglob("*.py"), *(ROOT / "pages").glob("*.py"), ROOT / "app.py"]
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in files
        if path not in TASK_HOMES
        for line in _task_comparisons(ast.parse(path.read_text()))
    ]
    assert not found


def test_the_task_check_sees_a_branch():
    """The scan above is not blind: it finds the forms a branch on a task takes."""
    code = 'a = m.task == "classify"\nb = "segment" != t\nc = task in ("classify", "x")\n'
    assert _task_comparisons(ast.parse(code)) == [1, 2, 3]
    assert _task_comparisons(ast.parse('kind = task_kind(task)\nd = x == "other"\n')) == []


def test_the_type_checker_is_clean():
    """mypy over explorer/ (settings in pyproject.toml): the type hints are checked, not just
    written."""
    done = _run("-m", "mypy", "--no-error-summary", "--hide-error-context")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
