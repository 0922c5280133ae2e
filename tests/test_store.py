import duckdb
import pytest

from mwe import export_set, import_jsonl
from mwe.errors import IntegrityError, InvalidNameError, NotAStoreError, NotFoundError, StoreError
from mwe.store import SetRef, Store
from mwe.store.migrations import MIGRATIONS

from .conftest import PERSONA, snapshot


@pytest.fixture
def store(db):
    with Store(db) as s:
        yield s


def test_versions_latest_and_parent(store):
    first = import_jsonl(store, [PERSONA / "agreeableness.jsonl"])
    second = import_jsonl(
        store, [PERSONA / "desire-for-acquiring-power.jsonl"], name="agreeableness"
    )
    assert (first.ref, second.ref) == ("agreeableness@1", "agreeableness@2")
    assert second.parent_id == first.id
    assert store.resolve("agreeableness") == second
    assert store.resolve("agreeableness@1") == first
    assert store.resolve(SetRef("agreeableness", 2)).item_count == 1000


def test_tables_of_the_design_exist_and_migrations_are_recorded(db):
    with Store(db) as store:
        tables = {
            r[0]
            for r in store.conn.execute(
                "SELECT table_name FROM information_schema.tables"
            ).fetchall()
        }
        applied = [r[0] for r in store.conn.execute("SELECT name FROM _migrations").fetchall()]
    assert {"eval_sets", "items", "candidates", "runs", "llm_calls", "scores", "reviews"} <= tables
    assert applied == [name for name, _ in MIGRATIONS]
    with Store(db) as store:  # reopening applies nothing twice
        assert store.conn.execute("SELECT count(*) FROM _migrations").fetchone()[0] == len(
            MIGRATIONS
        )


def test_read_only_open_never_migrates(tmp_path):
    path = tmp_path / "plain.duckdb"
    duckdb.connect(str(path)).close()
    before = path.read_bytes()
    with pytest.raises(NotAStoreError, match="empty DuckDB file, not an mwe store"):
        Store(path, read_only=True)
    assert path.read_bytes() == before
    with Store(path) as store:  # a write opens it as a new store
        assert store.list_sets() == []
    with Store(path, read_only=True) as store:
        assert store.list_sets() == []


def test_read_only_open_of_an_older_store_asks_for_migrate(tmp_path):
    path = tmp_path / "old.duckdb"
    with Store(path) as store:
        import_jsonl(store, [PERSONA / "agreeableness.jsonl"])
        store.conn.execute("DELETE FROM _migrations WHERE name = ?", [MIGRATIONS[-1][0]])
    with pytest.raises(StoreError, match=r"older mwe .*mwe --db .* migrate"):
        Store(path, read_only=True)


def test_failed_write_leaves_no_version(store, monkeypatch, db):
    import_jsonl(store, [PERSONA / "agreeableness.jsonl"])
    before = store.list_sets()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Store, "_insert_items", staticmethod(boom))
    with pytest.raises(RuntimeError):
        import_jsonl(store, [PERSONA / "desire-for-acquiring-power.jsonl"])
    assert store.list_sets() == before
    assert store.conn.execute("SELECT count(*) FROM items").fetchone()[0] == 1000
    assert store.conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


def test_tampered_version_fails_its_hash_check_on_export(db, tmp_path):
    with Store(db) as store:
        info = import_jsonl(store, [PERSONA / "agreeableness.jsonl"])
        store.conn.execute(
            "UPDATE items SET question = 'edited' WHERE set_id = ? AND idx = 3", [info.id]
        )
    with Store(db, read_only=True) as store, pytest.raises(IntegrityError, match="content hash"):
        export_set(store, "agreeableness", "jsonl", out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_names_and_versions(store):
    import_jsonl(store, [PERSONA / "agreeableness.jsonl"])
    with pytest.raises(NotFoundError, match="did you mean 'agreeableness'"):
        store.resolve("agreeablenes")
    with pytest.raises(NotFoundError, match="has no version 7 \\(versions: 1\\)"):
        store.resolve("agreeableness@7")
    with pytest.raises(InvalidNameError, match="NAME@N"):
        store.resolve("agreeableness@x")
    with pytest.raises(InvalidNameError, match="invalid set name"):
        store.resolve("Bad Name")


def test_snapshot_sees_a_change(db):
    with Store(db) as store:
        import_jsonl(store, [PERSONA / "agreeableness.jsonl"])
    before = snapshot(db)
    with Store(db) as store:
        import_jsonl(store, [PERSONA / "desire-for-acquiring-power.jsonl"])
    assert snapshot(db) != before


def test_identical_content_makes_no_new_version(store):
    first = import_jsonl(store, [PERSONA / "agreeableness.jsonl"])
    again = import_jsonl(store, [PERSONA / "agreeableness.jsonl"])
    assert again == first
    assert [s.ref for s in store.list_sets()] == ["agreeableness@1"]


def test_items_built_in_code_are_checked_before_they_are_stored(tmp_path):
    """An item of no registered format, or with too few answers, is refused by the store as an
    imported record would be (the item type itself knows no format registry)."""
    from mwe.items import Item

    with Store(tmp_path / "s.duckdb") as store:
        bogus = Item(format="bogus", question="Q?", answer_matching_behavior=" Yes",
                     answer_not_matching_behavior=[" No"])  # fmt: skip
        with pytest.raises(StoreError, match="item 0: unknown item format 'bogus'"):
            store.create_version("bad", [bogus], provenance={})
        assert store.list_sets() == []
