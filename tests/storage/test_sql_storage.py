"""What only the SQL storage has: URLs, schema versions, one-line errors, reopening, pickling."""

from __future__ import annotations

import pickle
import sqlite3
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import tunecraft as tc
from tunecraft.exceptions import (
    InvalidParameterError,
    MissingDependencyError,
    SchemaVersionError,
    StorageError,
    StudyNotFoundError,
    TrialStateError,
    TunecraftError,
)
from tunecraft.storage import MemoryStorage, get_storage
from tunecraft.storage._sql import SCHEMA_VERSION, SQLStorage
from tunecraft.testing.storages import postgres_url, unique_name
from tunecraft.trial import TrialState


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, repr(text)
    assert "Traceback" not in text and "sqlalchemy.exc" not in text and "(Background" not in text
    return text


def test_schema_version_is_stored(tmp_path: Path) -> None:
    db = tmp_path / "a.db"
    get_storage(f"sqlite:///{db}").close()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT key, value FROM tunecraft_meta").fetchall()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert rows == [("schema_version", str(SCHEMA_VERSION))]
    assert all(t.startswith("tunecraft_") for t in tables)


@pytest.mark.parametrize("stored", ["999", "0", "garbage"])
def test_other_schema_version_is_refused(tmp_path: Path, stored: str) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    get_storage(url).close()
    with sqlite3.connect(tmp_path / "a.db") as conn:
        conn.execute("UPDATE tunecraft_meta SET value = ? WHERE key = 'schema_version'", (stored,))
    with pytest.raises(SchemaVersionError) as excinfo:
        get_storage(url)
    text = _one_line(excinfo.value)
    assert stored in text and str(SCHEMA_VERSION) in text
    assert isinstance(excinfo.value, StorageError)


def test_sqlite_in_missing_folder_is_one_line_storage_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder"
    with pytest.raises(StorageError) as excinfo:
        get_storage(f"sqlite:///{missing / 'x.db'}")
    assert str(missing) in _one_line(excinfo.value)
    assert not missing.exists()


def test_sqlite_path_that_is_a_folder_is_one_line_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as excinfo:
        get_storage(f"sqlite:///{tmp_path}")
    _one_line(excinfo.value)


def test_not_a_database_is_one_line_storage_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError) as excinfo:
        get_storage(f"sqlite:///{junk}")
    _one_line(excinfo.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:1/test",  # nothing listens on port 1
        "postgresql://postgres:s3cret@127.0.0.1:1/test",
    ],
)
def test_unreachable_server_is_one_line_storage_error(url: str) -> None:
    start = time.monotonic()
    with pytest.raises(StorageError) as excinfo:
        get_storage(url)
    text = _one_line(excinfo.value)
    assert "s3cret" not in text, "the password must not be shown"
    assert "127.0.0.1" in text
    assert time.monotonic() - start < 15


@pytest.mark.parametrize(
    "url", ["postgresql://postgres@127.0.0.1:notaport/test", "sqlite://///\x00bad"]
)
def test_malformed_url_is_one_line_error(url: str) -> None:
    with pytest.raises(TunecraftError) as excinfo:
        get_storage(url)
    assert isinstance(excinfo.value, (StorageError, InvalidParameterError))
    _one_line(excinfo.value)


def test_missing_driver_names_the_fix() -> None:
    with pytest.raises((StorageError, MissingDependencyError)) as excinfo:
        get_storage("mysql://user@127.0.0.1:1/db")
    _one_line(excinfo.value)


@pytest.mark.parametrize("url", ["redis://localhost/0", "tunecraft.db", "http://x", ""])
def test_unknown_scheme_is_invalid_parameter(url: str) -> None:
    with pytest.raises(InvalidParameterError) as excinfo:
        get_storage(url)
    assert "sqlite:///" in _one_line(excinfo.value)
    with pytest.raises(InvalidParameterError):
        SQLStorage(url)


def test_storage_of_wrong_type_is_type_error() -> None:
    with pytest.raises(TypeError):
        get_storage(42)  # type: ignore[arg-type]


@pytest.mark.postgres
def test_missing_postgres_database_is_one_line_storage_error() -> None:
    base = postgres_url()
    url = base.rsplit("/", 1)[0] + "/tunecraft_no_such_database"
    with pytest.raises(StorageError) as excinfo:
        get_storage(url)
    assert "tunecraft_no_such_database" in _one_line(excinfo.value)


def test_reopen_sqlite_file_from_a_new_storage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    study = tc.Study({"x": tc.uniform(0, 1)}, storage=url, name="reopen", sampler="random")
    study.enqueue({"x": 0.25})
    study.optimize(lambda t: t.config["x"] * 2, n_trials=5)
    before = study.trials
    study.storage.close()
    again = tc.load_study("reopen", storage=url)
    assert again.trials == before
    assert again.best_value == min(t.value for t in before if t.value is not None)
    assert [s.name for s in tc.list_studies(url)] == ["reopen"]
    assert again.trials[0].config == {"x": 0.25}


def test_pickled_storage_opens_the_same_database(tmp_path: Path) -> None:
    storage = get_storage(f"sqlite:///{tmp_path / 'p.db'}")
    info = storage.create_study(unique_name(), "minimize", {})
    t = storage.create_trial(info.study_id)
    copy = pickle.loads(pickle.dumps(storage))
    assert copy is not storage and copy.url == storage.url
    copy.set_state(t.trial_id, TrialState.COMPLETE, value=1.0)
    assert storage.get_trial(t.trial_id).value == 1.0


@pytest.mark.postgres
def test_a_process_opens_a_pickled_server_storage_once() -> None:
    """A cluster sends the study, storage included, with every trial: each used to connect
    and check the schema again (85 ms a trial on PostgreSQL)."""
    data = pickle.dumps(get_storage(postgres_url()))
    first = pickle.loads(data)
    assert pickle.loads(data) is first
    name = unique_name()
    first.create_study(name, "minimize", {})
    assert pickle.loads(data).get_study(name).name == name


def test_a_pickled_sqlite_storage_is_opened_once_and_follows_a_replaced_file(
    tmp_path: Path,
) -> None:
    """Reused, but without pooled connections: a file deleted and created again at the same
    path (often with the same inode number) must be read and written, not the old one."""
    path = tmp_path / "p.db"
    data = pickle.dumps(get_storage(f"sqlite:///{path}"))
    first = pickle.loads(data)
    assert pickle.loads(data) is first
    assert first.get_study(first.create_study(unique_name(), "minimize", {}).name)
    for name in ("p.db", "p.db-wal", "p.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    name = unique_name()
    get_storage(f"sqlite:///{path}").create_study(name, "minimize", {})
    again = pickle.loads(data)
    assert again is first
    assert [s.name for s in again.list_studies()] == [name]
    assert pickle.loads(pickle.dumps(again)) is first  # sent on with the user's options


def test_storage_options_sent_by_value_do_not_pile_up_in_the_cache(tmp_path: Path) -> None:
    """A closure among the engine options arrives as a new object with each copy; keyed by
    its repr, every copy became a cache entry that was never released."""
    import sqlite3

    import cloudpickle

    from tunecraft.storage import _sql

    path = tmp_path / "c.db"
    storage = SQLStorage(
        f"sqlite:///{path}", engine_kwargs={"creator": lambda: sqlite3.connect(path)}
    )
    before = len(_sql._REOPENED)
    data = cloudpickle.dumps(storage)
    copies = [cloudpickle.loads(data) for _ in range(3)]
    assert len(_sql._REOPENED) == before
    assert len({id(c) for c in copies}) == 3
    name = unique_name()
    copies[0].create_study(name, "minimize", {})
    assert copies[2].get_study(name).name == name


@pytest.mark.postgres
def test_concurrent_heartbeats_for_one_trial_do_not_collide() -> None:
    """Delete-then-insert raised UniqueViolation on PostgreSQL when an old owner's beat met
    the new owner's first one (a paused trial resumed elsewhere)."""
    import threading

    a, b = get_storage(postgres_url()), SQLStorage(postgres_url())
    sid = a.create_study(unique_name(), "minimize", {}).study_id
    errors: list[BaseException] = []
    for _ in range(40):
        tid = a.create_trial(sid).trial_id
        barrier = threading.Barrier(2)

        def beat(
            storage: SQLStorage, tid: int = tid, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            try:
                storage.record_heartbeat([tid])
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=beat, args=(s,)) for s in (a, b)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert errors == []
    b.close()


@pytest.mark.postgres
@pytest.mark.parametrize("isolation", [None, "REPEATABLE READ", "SERIALIZABLE"])
def test_the_second_to_store_a_config_reads_the_firsts_whatever_the_isolation(
    isolation: str | None,
) -> None:
    """Under REPEATABLE READ the second caller's snapshot, taken before it waited for the
    study's lock, missed the first's config: neither found its twin."""
    import threading

    from sqlalchemy import event

    kwargs = {} if isolation is None else {"engine_kwargs": {"isolation_level": isolation}}
    a, b = SQLStorage(postgres_url(), **kwargs), SQLStorage(postgres_url(), **kwargs)
    sid = a.create_study(unique_name(), "minimize", {}).study_id
    first, second = a.create_trial(sid), a.create_trial(sid)
    holding = threading.Event()

    @event.listens_for(a._engine, "after_cursor_execute")
    def hold(conn: object, cursor: object, statement: str, *rest: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE TUNECRAFT_TRIALS"):
            holding.set()
            time.sleep(0.6)  # the first holds the study's lock a moment

    read: dict[str, dict[int, dict]] = {}

    def store(storage: SQLStorage, trial_id: int, key: str, go: threading.Event) -> None:
        assert go.wait(10)
        read[key] = storage.set_trial_config_and_read(trial_id, {"x": 1}, study_id=sid, after=-1)

    now = threading.Event()
    now.set()
    threads = [
        threading.Thread(target=store, args=(a, first.trial_id, "first", now)),
        threading.Thread(target=store, args=(b, second.trial_id, "second", holding)),
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert read["first"] == {0: {"x": 1}, 1: {}}
    assert read["second"] == {0: {"x": 1}, 1: {"x": 1}}
    a.close()
    b.close()


@pytest.mark.postgres
def test_deleting_a_study_while_a_config_is_stored_neither_deadlocks() -> None:
    """delete_study locked the trials, then the study: against set_trial_config_and_read,
    which locks the study first, PostgreSQL found a deadlock."""
    import threading

    from sqlalchemy import event

    a, b = SQLStorage(postgres_url()), SQLStorage(postgres_url())
    sid = a.create_study(unique_name(), "minimize", {}).study_id
    trial = a.create_trial(sid)

    @event.listens_for(a._engine, "after_cursor_execute")
    def hold(conn: object, cursor: object, statement: str, *rest: object) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM TUNECRAFT_TRIALS"):
            time.sleep(0.5)  # delete_study holds the trials' locks a moment

    errors: list[BaseException] = []

    def run(fn: Any, delay: float) -> None:
        time.sleep(delay)
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(lambda: a.delete_study(sid), 0.0)),
        threading.Thread(
            target=run,
            args=(
                lambda: b.set_trial_config_and_read(
                    trial.trial_id, {"x": 1}, study_id=sid, after=-1
                ),
                0.2,
            ),
        ),
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(isinstance(e, (StudyNotFoundError, TrialStateError)) for e in errors), errors
    a.close()
    b.close()


@pytest.mark.postgres
def test_a_database_user_who_cannot_create_tables_still_opens_an_older_database() -> None:
    """The heartbeat table is created on open; a user without CREATE rights got 'permission
    denied' for a database that opened before it existed."""
    import sqlalchemy as sa

    if "?" in postgres_url() or "@" not in postgres_url():
        pytest.skip("builds its own URLs from a plain postgresql://user@host/db one")
    suffix = uuid.uuid4().hex[:8]
    schema, role = f"tc_old_{suffix}", f"tc_app_{suffix}"
    admin = sa.create_engine(postgres_url())
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
    owner_url = f"{postgres_url()}?options=-csearch_path%3D{schema}"
    try:
        owner = get_storage(owner_url)
        owner.create_study("old", "minimize", {"x": "uniform(0, 1)"})
        owner.close()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE {schema}.tunecraft_heartbeats")
            conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
            conn.exec_driver_sql(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"
            )
            conn.exec_driver_sql(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}")
        host = postgres_url().split("@", 1)[1]
        app_url = f"postgresql://{role}@{host}?options=-csearch_path%3D{schema}"
        study = tc.load_study("old", storage=app_url, sampler="random")
        study.tell(study.ask(), 1.0)
        assert len(study.trials) == 1
        with pytest.raises(InvalidParameterError, match="has no heartbeat table"):
            tc.load_study("old", storage=app_url, heartbeat_interval=1)
        study.storage.close()
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


def test_in_memory_sqlite_is_private_to_the_process() -> None:
    storage = get_storage("sqlite:///:memory:")
    assert storage.url is None
    with pytest.raises(TypeError):
        pickle.dumps(storage)
    assert MemoryStorage.url is None


def _open_and_create(url: str, start_at: float) -> int:
    time.sleep(max(0.0, start_at - time.time()))
    storage = get_storage(url)
    try:
        return storage.create_study(unique_name(), "minimize", {}).study_id
    finally:
        storage.close()


@pytest.mark.slow
def test_processes_opening_a_new_file_together(tmp_path: Path) -> None:
    import multiprocessing as mp

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    start_at = time.time() + 1.0
    with ProcessPoolExecutor(4, mp_context=mp.get_context("spawn")) as pool:
        ids = list(pool.map(_open_and_create, [url] * 4, [start_at] * 4))
    assert len(set(ids)) == 4
    with sqlite3.connect(tmp_path / "fresh.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM tunecraft_meta").fetchone() == (1,)


@pytest.mark.parametrize("spelling", ["sqlite+pysqlite:///{}", "SQLite:///{}"])
def test_get_storage_accepts_a_named_driver_and_any_case(tmp_path: Path, spelling: str) -> None:
    url = spelling.format(tmp_path / "d.db")
    storage = get_storage(url)
    assert isinstance(storage, SQLStorage) and storage.url == url
    storage.create_study("driver", "minimize", {})
    assert [s.name for s in tc.list_studies(url)] == ["driver"]
    storage.close()


@pytest.mark.postgres
@pytest.mark.parametrize("scheme", ["postgres+psycopg", "PostgreSQL"])
def test_get_storage_accepts_postgres_spellings(scheme: str) -> None:
    url = scheme + "://" + postgres_url().split("://", 1)[1]
    storage = get_storage(url)
    assert isinstance(storage, SQLStorage)
    storage.list_studies()
    storage.close()


def test_unknown_scheme_error_hides_the_password() -> None:
    with pytest.raises(InvalidParameterError) as excinfo:
        get_storage("redis://user:s3cret@localhost/0")
    assert "s3cret" not in _one_line(excinfo.value)


def test_a_dropped_storage_closes_its_connections(tmp_path: Path) -> None:
    """Engines sit in reference cycles: without a finalizer, ``tc.list_studies(url)`` left
    its pooled connection (file handles, or a PostgreSQL session) open until a full gc."""
    storage = get_storage(f"sqlite:///{tmp_path / 'drop.db'}")
    storage.list_studies()
    pool = storage._engine.pool  # type: ignore[attr-defined]
    assert pool.checkedin() == 1
    del storage
    assert pool.checkedin() == 0


def test_missing_study_in_memory_sqlite_names_no_url() -> None:
    storage = get_storage("sqlite://")
    with pytest.raises(StudyNotFoundError) as excinfo:
        storage.get_study("absent")
    text = _one_line(excinfo.value)
    assert "'absent'" in text and "None" not in text and "in-memory" in text


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'steps.db'}" if request.param == "sqlite" else postgres_url()


def test_steps_past_32_bits_round_trip(sql_url: str) -> None:
    """A step may count samples or tokens; PostgreSQL's INTEGER stopped at 2**31 - 1."""
    storage = get_storage(sql_url)
    info = storage.create_study(unique_name(), "minimize", {})
    t = storage.create_trial(info.study_id)
    steps = [0, 2**31, 3 * 10**12, 2**63 - 1]
    for i, step in enumerate(steps):
        storage.report(t.trial_id, step, float(i))
    assert storage.get_trial(t.trial_id).intermediate == {s: float(i) for i, s in enumerate(steps)}
    assert (
        storage.get_trials(info.study_id)[0].intermediate
        == storage.get_trial(t.trial_id).intermediate
    )
    storage.delete_study(info.study_id)
    storage.close()


@pytest.mark.postgres
def test_postgres_32_bit_step_column_is_widened_on_open() -> None:
    """A database made before steps were 64 bits is widened in place, keeping its values."""
    import sqlalchemy as sa

    schema = "tc_" + unique_name("steps").replace("-", "_")
    url = postgres_url() + f"?options=-csearch_path%3D{schema}"
    admin = get_storage(postgres_url())
    with admin._engine.begin() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        storage = get_storage(url)
        info = storage.create_study(unique_name(), "minimize", {})
        t = storage.create_trial(info.study_id)
        storage.report(t.trial_id, 7, 1.5)
        with storage._engine.begin() as conn:  # type: ignore[attr-defined]
            conn.exec_driver_sql("ALTER TABLE tunecraft_intermediate ALTER COLUMN step TYPE INT")
        storage.close()
        again = get_storage(url)
        again.report(t.trial_id, 2**40, 2.5)
        assert again.get_trial(t.trial_id).intermediate == {7: 1.5, 2**40: 2.5}
        with again._engine.connect() as conn:  # type: ignore[attr-defined]
            kind = conn.execute(
                sa.text(
                    "SELECT data_type FROM information_schema.columns WHERE table_schema = "
                    ":s AND table_name = 'tunecraft_intermediate' AND column_name = 'step'"
                ),
                {"s": schema},
            ).scalar()
        assert kind == "bigint"
        again.close()
    finally:
        with admin._engine.begin() as conn:  # type: ignore[attr-defined]
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def test_error_with_a_nul_character_fails_the_trial_and_the_study_goes_on(sql_url: str) -> None:
    """PostgreSQL text refuses NUL: recording the error raised, left the trial running and
    stopped the study."""

    def objective(trial: tc.Trial) -> float:
        raise RuntimeError("bad bytes: " + b"ab\x00cd".decode())

    study = tc.Study(
        {"x": tc.uniform(0, 1)}, storage=sql_url, name=unique_name("nul"), sampler="random"
    )
    study.optimize(objective, n_trials=2)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.FAILED] * 2
    assert all(t.error is not None and "bad bytes: ab" in t.error for t in trials)
    tc.delete_study(study.name, storage=study.storage)
    study.storage.close()
