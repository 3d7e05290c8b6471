"""docs/spec.md lists every field of the models, with the generated table kept current."""

from __future__ import annotations

from pathlib import Path

from controlplane.spec.reference import BEGIN, END, field_table, missing_meanings, sections

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "spec.md"


def test_every_model_field_has_a_meaning() -> None:
    assert missing_meanings() == []


def test_doc_holds_the_current_field_table() -> None:
    text = DOC.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] + "\n" == field_table(), "stale field reference: run scripts/gen-crd"


def test_doc_names_every_field_of_every_object() -> None:
    text = DOC.read_text()
    missing = [
        f"{model.__name__}.{info.alias or name}"
        for model, _ in sections()
        for name, info in model.model_fields.items()
        if f"| `{info.alias or name}` |" not in text or f"### {model.__name__}" not in text
    ]
    assert missing == []
