"""The annotation columns are declared once, by their kind, and everything follows from that:
the typed records, the parser's columns, the index's, the cache's files."""

from __future__ import annotations

import ast
import dataclasses
import json

import numpy as np
import pytest

from explorer.coco import _annotations, _build, kinds, open_index
from explorer.coco._records import Problems, column
from explorer.coco.annotation_kind import Column, RecordField
from explorer.coco.instances import INSTANCES
from explorer.paths import cache_dir
from tests.helpers import ROOT

COCO_PACKAGE = ROOT / "explorer" / "coco"


def _declared_names() -> set[str]:
    return {c.name for c in (*INSTANCES.parsed, *INSTANCES.columns)} | {
        f.name for f in INSTANCES.fields
    }


def _modules():
    for path in sorted(COCO_PACKAGE.rglob("*.py")):
        yield path.relative_to(ROOT), ast.parse(path.read_text(), str(path))


def _is_struct(node: ast.AST) -> bool:
    return isinstance(node, ast.ClassDef) and any("Struct" in ast.unparse(b) for b in node.bases)


def _strings(nodes) -> list[str]:
    return [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_annotation_columns_are_declared_in_one_place():
    """No second list of column names (a tuple like ``("id", "image_id", "bbox")``), no second
    typed record with the fields (a msgspec Struct class), no column declared twice."""
    names = _declared_names()
    lists, records, columns = [], [], {}
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Tuple | ast.List | ast.Set):
                if len([s for s in _strings(node.elts) if s in names]) >= 3:
                    lists.append(f"{path}:{node.lineno}")
            elif _is_struct(node):
                fields = [n.target.id for n in node.body if isinstance(n, ast.AnnAssign)]
                if len([f for f in fields if f in names]) >= 3:
                    records.append(f"{path}:{node.lineno} {node.name}")
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Column":
                for name in _strings(node.args[:1]):
                    columns.setdefault(name, []).append(f"{path}:{node.lineno}")
    assert not lists, f"annotation column names listed again: {lists}"
    assert not records, f"annotation records declared again: {records}"
    assert {k: v for k, v in columns.items() if len(v) > 1} == {}
    assert set(columns) >= {c.name for c in INSTANCES.parsed + INSTANCES.derived}


def test_the_typed_records_are_built_from_the_fields():
    names = tuple(f.name for f in INSTANCES.fields)
    assert INSTANCES.record.__struct_fields__ == names
    assert INSTANCES.loose_record.__struct_fields__ == names


def test_parser_index_and_cache_hold_the_declared_columns(sample_root):
    path = sample_root / "annotations" / "instances_val2017.json"
    data = _build.read_file(path)
    spans = _annotations.spans_from_raws(_build.decode_top_level(path, data).annotations, data)
    parsed = _annotations.parse_spans(INSTANCES, spans, data, Problems())
    assert list(parsed) == [c.name for c in INSTANCES.parsed]

    index = open_index(path)
    assert list(index.tables) == [INSTANCES.name] and index.annotations is index.tables["instances"]
    assert list(index.annotations) == [c.name for c in INSTANCES.columns]
    for c in INSTANCES.columns:
        values = index.annotations[c.name]
        assert (values.dtype, values.shape[1:]) == (np.dtype(c.dtype), c.row_shape), c.name
    assert "seg_first" in parsed and "seg_first" not in index.annotations  # not stored
    folder = cache_dir("index") / index.fingerprint
    saved = {p.name for p in folder.glob("instances_*.npy")}
    assert saved == {f"instances_{c.name}.npy" for c in INSTANCES.columns}
    assert json.loads((folder / "meta.json").read_text())["kinds"] == ["instances"]


def _levels(field: RecordField, chunk: list, span) -> tuple[np.ndarray]:
    return (column(chunk, field.name, np.int32),)


def _with_a_new_field(monkeypatch) -> None:
    """The instances kind with one more declared field, registered in its place."""
    field = RecordField("occlusion", int, int, (Column("occlusion", "int32"),), _levels, missing=0)
    extended = dataclasses.replace(INSTANCES, fields=(*INSTANCES.fields, field))
    real = kinds.get
    monkeypatch.setattr(kinds, "get", lambda name: extended if name == "instances" else real(name))


@pytest.mark.parametrize("fast", [False, True])
def test_a_declared_field_flows_through_parse_index_and_cache(
    monkeypatch, tmp_path, sample_root, fast
):
    doc = json.loads((sample_root / "annotations" / "instances_train2017.json").read_text())
    for a in doc["annotations"][::2]:  # the others leave it out: its missing value, 0
        a["occlusion"] = a["id"] % 17 + 1
    path = tmp_path / "with_occlusion_levels.json"
    path.write_text(json.dumps(doc))
    _with_a_new_field(monkeypatch)
    if fast:  # small spans: found by byte search, half decoded in a forked child
        monkeypatch.setattr(_annotations, "SPAN_BYTES", 3000)
        monkeypatch.setattr(_annotations.threading, "active_count", lambda: 1)
    want = {a["id"]: a.get("occlusion", 0) for a in doc["annotations"]}

    built = open_index(path)
    again = open_index(path)
    assert not built.from_cache and again.from_cache
    for index in (built, again):
        got = index.annotations["occlusion"]
        assert got.dtype == np.int32
        assert dict(zip(index.annotations["id"].tolist(), got.tolist(), strict=True)) == want
    assert (cache_dir("index") / built.fingerprint / "instances_occlusion.npy").is_file()


def test_a_cache_naming_a_kind_no_longer_registered_is_rebuilt(monkeypatch, tmp_path, sample_root):
    path = tmp_path / "a.json"
    path.write_bytes((sample_root / "annotations" / "instances_val2017.json").read_bytes())
    first = open_index(path)
    meta = cache_dir("index") / first.fingerprint / "meta.json"
    meta.write_text(meta.read_text().replace('"kinds": ["instances"]', '"kinds": ["gone"]'))
    again = open_index(path)
    assert not again.from_cache and again.num_annotations == first.num_annotations


def test_a_kind_is_registered_once():
    assert kinds.KINDS["instances"] is kinds.get("instances") is INSTANCES
    with pytest.raises(ValueError, match="already registered"):
        kinds.register(INSTANCES)
