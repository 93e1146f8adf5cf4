"""``pip install .`` gives a working ``python -m explorer``: the package, its subpackages and its
data files install, the tests, benchmarks and app pages do not, and pyproject's pins are
requirements.txt's.

The install goes into a temporary virtual environment that sees this interpreter's packages
(``--system-site-packages``), built without build isolation and without an index: nothing is
downloaded, and the pinned dependencies must already be there, as ``pip install -r
requirements.txt`` leaves them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from tests.helpers import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# what a wheel build reads from the source tree; the rest (tests, bench, pages, app.py) stays out
SOURCES = ("pyproject.toml", "README.md", "explorer")


def _pins(lines: list[str]) -> set[str]:
    """Requirement lines without comments and blanks, spaces dropped."""
    return {ln.split("#")[0].replace(" ", "") for ln in lines} - {""}


def test_pyproject_pins_are_requirements_txt_pins():
    project = PYPROJECT["project"]
    runtime = _pins(project["dependencies"])
    test = _pins(project["optional-dependencies"]["test"])
    assert not runtime & test, runtime & test
    assert runtime | test == _pins((ROOT / "requirements.txt").read_text().splitlines())
    assert all(re.fullmatch(r"[\w.\-\[\]]+==[\w.]+", p) for p in runtime | test)
    # test tools stay out of a user's install
    assert not {p.split("==")[0] for p in runtime} & {"pytest", "playwright", "ruff", "cleanlab"}


def _run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    # no PYTHONPATH: the installed package must be the one imported, not the repo's
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _require_build_tools() -> None:
    """Skip unless an offline wheel build can work: pip, and setuptools 70.1 or later (which
    builds wheels without the separate ``wheel`` package) as pyproject's build-system asks."""
    try:
        setuptools = tuple(int(x) for x in metadata.version("setuptools").split(".")[:2])
        metadata.version("pip")
    except metadata.PackageNotFoundError as e:
        pytest.skip(f"{e.name} not installed: pip's build isolation would download it")
    if setuptools < (70, 1):
        pytest.skip(f"setuptools {setuptools} < 70.1: pip's build isolation would download one")


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> tuple[Path, Path]:
    """(python of a fresh venv with the package installed from a copy of its sources,
    a folder outside the repository to run it from)."""
    _require_build_tools()
    tmp = tmp_path_factory.mktemp("pkg")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    # without pip of its own: the system pip (seen through the system site-packages) installs
    # into the venv, and the build runs the system setuptools, not ensurepip's older copy
    env_dir = tmp / "venv"
    made = _run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env_dir)],
        tmp,
    )
    assert made.returncode == 0, made.stderr
    python = env_dir / "bin" / "python"
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    offline = ["--no-index", "--no-build-isolation", "--no-deps"]
    done = _run([*pip, "install", "--quiet", *offline, str(src)], tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    return python, tmp


def test_installed_package_holds_explorer_and_its_data_only(venv):
    python, tmp = venv
    r = _run([str(python), "-c", "import explorer; print(explorer.__file__)"], tmp)
    assert r.returncode == 0, r.stderr
    site = Path(r.stdout.strip()).parents[1]
    assert site.is_relative_to(python.parents[1]), f"imported {r.stdout.strip()}, not the venv's"
    (record,) = site.glob("coco_explorer-*.dist-info/RECORD")
    files = [ln.split(",")[0] for ln in record.read_text().splitlines()]
    tops = {f.split("/")[0] for f in files if not f.startswith("..")}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"explorer"}, tops
    assert "explorer/coco/data/imagenet_to_coco.json" in files
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "explorer").rglob("*.py")}
    assert source <= set(files), sorted(source - set(files))


def test_installed_cli_runs_outside_the_repository(venv):
    python, tmp = venv
    cli = [str(python), "-m", "explorer"]
    r = _run([*cli, "--help"], tmp)
    assert r.returncode == 0 and "sample" in r.stdout and "train" in r.stdout, r.stderr
    r = _run([*cli, "sample", "--out", str(tmp / "s")], tmp)
    assert r.returncode == 0, r.stderr
    ann = tmp / "s" / "annotations" / "instances_val2017.json"
    assert ann.is_file() and r.stdout.strip().endswith(str(tmp / "s"))
    images = tmp / "s" / "val2017"
    r = _run([*cli, "stats", "--coco", str(ann), "--images", str(images), "--json"], tmp)
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    assert stats["images"] == 100 and len(stats["categories"]) == 7


def test_packaged_label_map_is_read(venv):
    python, tmp = venv
    doc = json.loads((ROOT / "explorer/coco/data/imagenet_to_coco.json").read_text())
    first = doc["map"][0]
    code = (
        "from explorer.coco import labels; m = labels.imagenet_to_coco(); "
        f"print(labels.__file__, len(m), labels.coco_name_of_label('imagenet', {first['index']}, "
        "[]).replace(' ', '_'))"
    )
    r = _run([str(python), "-c", code], tmp)
    assert r.returncode == 0, r.stderr
    where, size, name = r.stdout.split()
    assert Path(where).is_relative_to(python.parents[1])
    assert int(size) == len(doc["map"]) and name == first["coco"].replace(" ", "_")


def test_pinned_dependencies_are_all_satisfied(venv):
    """Resolving the package with its dependencies and test tools, offline, installs nothing but
    the package itself: every pin is met by what is installed."""
    python, tmp = venv
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--no-input"]
    check = _run([*pip, "check"], tmp)
    assert check.returncode == 0, check.stdout + check.stderr
    offline = ["--no-index", "--no-build-isolation", "--quiet", "--report", "-"]
    r = _run([*pip, "install", "--dry-run", *offline, f"{tmp / 'src'}[test]"], tmp)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert [i["metadata"]["name"] for i in report["install"]] == ["coco-explorer"]
