"""The docs tell the truth: README's layout and command table, ARCHITECTURE's paths and layers."""

from __future__ import annotations

import argparse
import re

from explorer.cli import build_parser
from tests.helpers import ROOT

README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"


def _section(text: str, title: str) -> list[str]:
    """The lines of the ``## title`` section, up to the next ``## `` heading."""
    lines = text.splitlines()
    start = lines.index(f"## {title}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start:end]


def _layout_paths() -> list[str]:
    """First word of each entry of README's Layout block (indented 4; continuations deeper)."""
    return [
        line.split()[0]
        for line in _section(README.read_text(), "Layout")
        if line.startswith("    ") and not line.startswith("     ")
    ]


def test_layout_lists_only_paths_that_exist():
    paths = _layout_paths()
    assert paths, "README's Layout section lists nothing"
    for p in paths:
        target = ROOT / p
        if p.endswith("/"):
            assert target.is_dir(), f"README Layout lists {p}, which is not a folder"
        else:
            assert target.exists(), f"README Layout lists {p}, which does not exist"


def test_layout_lists_every_package_and_top_level_module():
    listed = {p.rstrip("/") for p in _layout_paths()}
    explorer = ROOT / "explorer"
    expected = {
        f"explorer/{d.name}" for d in explorer.iterdir() if (d / "__init__.py").is_file()
    } | {f"explorer/{f.name}" for f in explorer.glob("*.py") if f.name != "__init__.py"}
    missing = sorted(expected - listed)
    assert not missing, f"README Layout does not list {missing}"


def _subcommands() -> list[str]:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def test_command_table_is_one_table_of_every_subcommand():
    section = _section(README.read_text(), "Command line")
    rows = [i for i, line in enumerate(section) if line.startswith("|")]
    assert rows, "no table under ## Command line"
    assert rows == list(range(rows[0], rows[0] + len(rows))), (
        "the command table is cut (a blank line or a paragraph between its rows)"
    )
    header, rule, *body = (section[i] for i in rows)
    assert header.replace(" ", "") == "|command|whatitdoes|"
    assert set(rule) <= set("|-: ")
    names = []
    for row in body:
        cells = re.split(r"(?<!\\)\|", row.strip())[1:-1]
        assert len(cells) == 2, f"a command row needs 2 cells: {row[:80]}"
        names.append(cells[0].strip().strip("`").split()[0])
    assert names == _subcommands()


def test_architecture_names_only_paths_that_exist():
    text = ARCHITECTURE.read_text()
    assert "../" not in text, "ARCHITECTURE.md must stand alone in the repository"
    # repository paths; a leading "/" is a URL path (a page's deep link), not a file
    paths = {p for p in re.findall(r"`([\w./-]+)`", text) if "/" in p and p[0] != "/"}
    assert paths
    for p in sorted(paths):
        assert (ROOT / p).exists(), f"docs/ARCHITECTURE.md names {p}, which does not exist"


def test_setup_makes_a_venv_and_offers_the_cpu_wheels_of_the_pinned_torch():
    setup = _section(README.read_text(), "Set up and run")
    commands = [line.strip() for line in setup if line.startswith("    ")]
    venv = commands.index("python -m venv .venv && . .venv/bin/activate")
    assert venv < commands.index("pip install -r requirements.txt")
    pins = dict(
        line.split("==")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.startswith(("torch==", "torchvision=="))
    )
    cpu = next(c for c in commands if "download.pytorch.org/whl/cpu" in c)
    assert cpu == (
        f"pip install torch=={pins['torch']} torchvision=={pins['torchvision']} "
        "--index-url https://download.pytorch.org/whl/cpu"
    )
