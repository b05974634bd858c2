"""Privacy end to end: planted names, emails, card numbers and account ids never leave the system.

The shared offline run (tests/e2e.py): one `wildvalues run` (with its report), one `wildvalues
report` with screenshots and one `wildvalues export` on generated conversations with markers
planted in them. Then every file under the output and export directories is searched: Delta
tables through delta-rs (Parquet pages are compressed, so their bytes would hide a marker), every
other file (HTML, PNG, CSV, JSON, the MLflow store and its artifacts) as bytes, and the commands'
stdout and stderr.

Two kinds of marker:
- PII (a name given with "my name is", an email, a Luhn-valid card number, a phone number and
  the account id of --user-field): redacted or hashed at ingest, so found nowhere at all;
- a rare harmless word in the conversation text (three conversations): kept on purpose
  in the INTERNAL tables that hold conversation text (README, "Privacy"), and found in nothing
  published.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from deltalake import DeltaTable

from wildvalues.reporting.report import VIEWS

if TYPE_CHECKING:  # mypy names tests/ modules by their path; pytest puts tests/ on sys.path
    from tests.e2e import ACCOUNT_PREFIX, ACCOUNTS, CARD, EMAIL, HARMLESS, NAME, PHONE
else:
    from e2e import ACCOUNT_PREFIX, ACCOUNTS, CARD, EMAIL, HARMLESS, NAME, PHONE

PII_MARKERS = (NAME, "Quillon", "Marwick", EMAIL, CARD, CARD.replace(" ", ""), PHONE, ACCOUNT_PREFIX)
# Tables that hold conversation text (redacted) or the classifier's free text, by design.
INTERNAL_TEXT_TABLES = {"conversations", "classifications", "classification_cache", "value_expressions"}


def luhn_valid(number: str) -> bool:
    digits = [int(d) for d in number if d.isdigit()][::-1]
    total = sum(d if i % 2 == 0 else (2 * d - 9 if d > 4 else 2 * d) for i, d in enumerate(digits))
    return total % 10 == 0


@pytest.fixture(scope="module")
def privacy_run(offline_run):
    return offline_run


def table_texts(out: Path) -> dict[str, str]:
    """Every Delta table under <out>/tables as text, by name."""
    tables = out / "tables"
    return {
        path.name: repr(DeltaTable(str(path)).to_pyarrow_table().to_pylist())
        for path in sorted(tables.iterdir())
        if (path / "_delta_log").is_dir()
    }


def file_texts(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Every file under root that is not part of a Delta table under `skip`, as text."""
    texts = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if skip is not None and path.is_relative_to(skip):
            continue
        texts[str(path.relative_to(root))] = path.read_bytes().decode("utf-8", errors="ignore")
    return texts


def found(texts: dict[str, str], markers: tuple[str, ...]) -> dict[str, list[str]]:
    hits = {name: [m for m in markers if m.lower() in text.lower()] for name, text in texts.items()}
    return {name: markers for name, markers in hits.items() if markers}


def test_the_markers_are_in_the_input(privacy_run):
    text = privacy_run["input"].read_text()
    assert luhn_valid(CARD)
    planted = set(PII_MARKERS + (HARMLESS,)) - {CARD.replace(" ", "")}  # searched for, not planted
    assert set(found({"input": text}, PII_MARKERS + (HARMLESS,))["input"]) == planted


def test_no_pii_in_any_table(privacy_run):
    tables = table_texts(privacy_run["out"])
    assert {"conversations", "public_values_level_0", "public_response_types"} <= set(tables)
    assert found(tables, PII_MARKERS) == {}


def test_no_pii_in_any_file_or_log(privacy_run):
    out = privacy_run["out"]
    files = file_texts(out, skip=out / "tables") | file_texts(privacy_run["export"])
    assert any(name.endswith(".png") for name in files) and any(name.endswith(".html") for name in files)
    logs = {
        f"command {i} {stream}": getattr(r, stream)
        for i, r in enumerate(privacy_run["results"])
        for stream in ("stdout", "stderr")
    }
    assert found(files | logs, PII_MARKERS) == {}


def test_the_redacted_text_is_kept_internally_and_published_nowhere(privacy_run):
    out = privacy_run["out"]
    tables = table_texts(out)
    published_tables = {name: text for name, text in tables.items() if name not in INTERNAL_TEXT_TABLES}
    # Proves the search finds what is there: the harmless word stays in the internal text.
    assert found({"conversations": tables["conversations"]}, (HARMLESS, "<EMAIL")) == {
        "conversations": [HARMLESS, "<EMAIL"]
    }
    files = file_texts(out, skip=out / "tables") | file_texts(privacy_run["export"])
    logs = {f"command {i}": r.stdout + r.stderr for i, r in enumerate(privacy_run["results"])}
    assert found(published_tables | files | logs, (HARMLESS,)) == {}


def test_account_ids_are_stored_as_salted_hashes_only(privacy_run):
    rows = (
        DeltaTable(str(privacy_run["out"] / "tables" / "conversations"))
        .to_pyarrow_table(columns=["user_hash"])
        .to_pylist()
    )
    hashes = {row["user_hash"] for row in rows}
    assert len(hashes) == ACCOUNTS
    assert all(isinstance(h, str) and len(h) == 64 for h in hashes)


def test_published_groups_cover_k_conversations_and_k_users(privacy_run):
    """Twelve accounts: every published row covers at least k = 25 conversations and 10 of them."""
    tables = privacy_run["out"] / "tables"
    checked = 0
    for name in ("public_values_level_3", "public_values_level_0", "public_response_types"):
        rows = DeltaTable(str(tables / name)).to_pyarrow_table().to_pylist()
        count = "n_conversations"
        assert rows, f"{name} is empty: the thresholds left nothing to check"
        assert all(row[count] >= 25 and row["n_users"] >= 10 for row in rows), name
        assert all(row["n_users"] <= 12 for row in rows), name
        checked += len(rows)
    # The internal tables keep the small groups, with their true user counts.
    level0 = DeltaTable(str(tables / "values_level_0")).to_pyarrow_table().to_pylist()
    assert any(row["n_users"] < 10 for row in level0)
    assert checked > 5


def test_view_screenshots_are_written_beside_the_report_and_logged_to_mlflow(privacy_run):
    out = privacy_run["out"]
    beside = sorted(p.name for p in (out / "report").glob("view_*.png"))
    logged = sorted(p.name for p in out.rglob("view_*.png") if p.parent != out / "report")
    assert {f"view_{name}.png" for name, _, _ in VIEWS} <= set(beside)
    assert logged == beside
