"""``pip install .`` gives a working ``python -m explorer``: the package, its subpackages and its
data files install, the tests, benchmarks and app pages do not, and pyproject's pins are
requirements.txt's. A wheel (``pip wheel --no-deps .``) holds the same and runs where it is
unpacked; ``pip install -e .`` runs the checkout's own code.

The install goes into a temporary virtual environment that sees this interpreter's packages
(``--system-site-packages``), built without build isolation and without an index: nothing is
downloaded, and the pinned dependencies must already be there, as ``pip install -r
requirements.txt`` leaves them.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
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


def _run(
    args: list[str], cwd: Path, timeout: float = 300, path: Path | None = None
) -> subprocess.CompletedProcess:
    # no PYTHONPATH (or only ``path``): the installed package must be the one imported, not the
    # repo's
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if path is not None:
        env["PYTHONPATH"] = str(path)
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


OFFLINE = ["--no-index", "--no-build-isolation", "--no-deps"]


def _copy_sources(src: Path) -> Path:
    """What a build reads, copied to ``src``: a build writes ``build/`` and ``*.egg-info`` beside
    its sources (and packs a stale ``build/lib`` into the next wheel), never into the checkout."""
    src.mkdir(parents=True)
    for name in SOURCES:
        if (ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    return src


def _new_venv(env_dir: Path) -> list[str]:
    """A venv that sees this interpreter's packages; the pip command that installs into it.
    Without pip of its own: the system pip (seen through the system site-packages) installs
    into the venv, and a build runs the system setuptools, not ensurepip's older copy."""
    made = _run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(env_dir)],
        env_dir.parent,
    )
    assert made.returncode == 0, made.stderr
    return [str(env_dir / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> tuple[Path, Path]:
    """(python of a fresh venv with the package installed from a copy of its sources,
    a folder outside the repository to run it from)."""
    _require_build_tools()
    tmp = tmp_path_factory.mktemp("pkg")
    src = _copy_sources(tmp / "src")
    pip = _new_venv(tmp / "venv")
    done = _run([*pip, "install", "--no-input", "--quiet", *OFFLINE, str(src)], tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    return Path(pip[0]), tmp


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


def _source_files() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / "explorer").rglob("*.py")}


def test_a_wheel_holds_explorer_its_data_and_entry_point_and_runs_unpacked(tmp_path):
    """``pip wheel --no-deps .``, offline: the wheel holds the package (every module), its data
    and the ``coco-explorer`` script, nothing else; unpacked into a folder (what an install of a
    pure wheel is) it runs from a clean folder."""
    _require_build_tools()
    src = _copy_sources(tmp_path / "src")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    built = _run(
        [*pip, "wheel", "--quiet", *OFFLINE, "-w", str(tmp_path / "w"), str(src)], tmp_path
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "w").glob("coco_explorer-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = configparser.ConfigParser()
        scripts.read_string(z.read(entry_points).decode())
        z.extractall(tmp_path / "site")
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"explorer"}, tops
    assert "explorer/coco/data/imagenet_to_coco.json" in names
    assert _source_files() <= names, sorted(_source_files() - names)
    assert dict(scripts["console_scripts"]) == {"coco-explorer": "explorer.cli:main"}

    clean = tmp_path / "clean"
    clean.mkdir()
    code = (
        "import explorer, explorer.cli as cli; from explorer.coco import labels; "
        "print(explorer.__file__, len(labels.imagenet_to_coco())); cli.main(['--help'])"
    )
    r = _run([sys.executable, "-c", code], clean, path=tmp_path / "site")
    assert r.returncode == 0, r.stderr
    where, size = r.stdout.split("\n", 1)[0].split()
    assert Path(where).is_relative_to(tmp_path / "site") and int(size) > 0, r.stdout
    assert "download" in r.stdout and "sample" in r.stdout
    r = _run([sys.executable, "-m", "explorer", "--help"], clean, path=tmp_path / "site")
    assert r.returncode == 0 and "train" in r.stdout, r.stderr


def test_an_editable_install_runs_the_checkouts_code(tmp_path):
    """``pip install -e .``, offline, into a fresh venv: ``python -m explorer`` from elsewhere
    imports the source folder itself (an edit there is live), with its data file."""
    _require_build_tools()
    src = _copy_sources(tmp_path / "src")
    pip = _new_venv(tmp_path / "venv")
    done = _run([*pip, "install", "--no-input", "--quiet", *OFFLINE, "-e", str(src)], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    clean = tmp_path / "clean"
    clean.mkdir()
    code = "import explorer.coco.labels as m; print(m.__file__, len(m.imagenet_to_coco()))"
    r = _run([pip[0], "-c", code], clean)
    assert r.returncode == 0, r.stderr
    where, size = r.stdout.split()
    assert Path(where) == src / "explorer" / "coco" / "labels.py" and int(size) > 0
    r = _run([pip[0], "-m", "explorer", "--help"], clean)
    assert r.returncode == 0 and "download" in r.stdout, r.stderr
