"""Storage in a SQL database through SQLAlchemy Core: SQLite embedded, PostgreSQL shared.

Schema (version :data:`SCHEMA_VERSION`, checked on open)::

    tunecraft_meta          key, value                      ("schema_version" -> "1")
    tunecraft_studies       id, name (unique), direction, space (JSON), next_number, created
    tunecraft_trials        id, study_id, number, state, config, value, user_attrs, error,
                            worker, datetime_start, datetime_complete; unique (study_id, number)
    tunecraft_intermediate  trial_id, step (64-bit), value; primary key (trial_id, step)
    tunecraft_heartbeats    trial_id (primary key), beat (seconds since the epoch, read off
                            the database server's clock)

The heartbeat table came after version 1 without changing it: opening a database creates the
table when it is missing, and a release that does not know it leaves it alone.

Every public method runs in one transaction. Trial numbers come from the study row's
``next_number`` counter, incremented by a single ``UPDATE ... RETURNING``: the database's row
lock serialises concurrent writers, so numbers are unique and dense without a table scan.
State changes are ``UPDATE ... WHERE state IN (allowed) RETURNING ...``: the check and the write
are one statement, so two processes can never both finish (or both claim) the same trial.
``set_trial_config_and_read`` takes the study row's lock (``SELECT ... FOR UPDATE``) before
it stores and reads, in a READ COMMITTED transaction whatever the engine's default, so that
the second of two callers reads what the first committed; ``delete_study`` takes the same
lock first, so the two never wait on each other's rows.

SQLite runs with the driver's implicit transactions turned off: writes begin with
``BEGIN IMMEDIATE`` (the write lock is taken first, so the busy timeout applies and a
read-then-write can never lose an update) and multi-statement reads with ``BEGIN`` (one
consistent snapshot). Statements are built once per storage, so SQLAlchemy's compiled cache
serves every call on the hot path.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Collection, Container, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from tunecraft.exceptions import (
    DuplicatedStudyError,
    InvalidParameterError,
    SchemaVersionError,
    StorageError,
    StudyNotFoundError,
    TrialStateError,
)
from tunecraft.logging import get_logger
from tunecraft.storage._base import TRANSITIONS, Storage, StudyInfo, dumps_json, utcnow
from tunecraft.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["SCHEMA_VERSION", "SQLStorage"]

SCHEMA_VERSION = 1

_log = get_logger("storage")

_T = TypeVar("_T")
_KNOWN_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")
_OPEN = (TrialState.WAITING.value, TrialState.RUNNING.value, TrialState.PAUSED.value)
_REPORTABLE = (TrialState.RUNNING.value, TrialState.PAUSED.value)


def _tables(sa: Any) -> tuple[Any, ...]:
    md = sa.MetaData()
    meta = sa.Table(
        "tunecraft_meta",
        md,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    studies = sa.Table(
        "tunecraft_studies",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(512), nullable=False, unique=True),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("space", sa.Text, nullable=False),
        sa.Column("next_number", sa.Integer, nullable=False, default=0),
        sa.Column("created", sa.DateTime, nullable=False),
    )
    trials = sa.Table(
        "tunecraft_trials",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "study_id",
            sa.Integer,
            sa.ForeignKey("tunecraft_studies.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=True),
        sa.Column("user_attrs", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("worker", sa.String(256), nullable=True),
        sa.Column("datetime_start", sa.DateTime, nullable=True),
        sa.Column("datetime_complete", sa.DateTime, nullable=True),
        sa.UniqueConstraint("study_id", "number", name="uq_tunecraft_trial_number"),
        sa.Index("ix_tunecraft_trials_study_state", "study_id", "state"),
    )
    intermediate = sa.Table(
        "tunecraft_intermediate",
        md,
        sa.Column(
            "trial_id",
            sa.Integer,
            sa.ForeignKey("tunecraft_trials.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        # 64 bits: a step may count samples or tokens seen, past 2**31 (PostgreSQL's INTEGER).
        sa.Column("step", sa.BigInteger, primary_key=True),
        sa.Column("value", sa.Float(precision=53), nullable=False),
    )
    heartbeats = sa.Table(
        "tunecraft_heartbeats",
        md,
        sa.Column(
            "trial_id",
            sa.Integer,
            sa.ForeignKey("tunecraft_trials.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("beat", sa.Float(precision=53), nullable=False),
    )
    return md, meta, studies, trials, intermediate, heartbeats


def _db_clock(sa: Any, dialect: str) -> Any:
    """Seconds since the epoch by the database server's clock, as a SQL expression: every
    host that shares the database measures heartbeats with the same clock."""
    text = {
        "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
        "postgresql": "EXTRACT(EPOCH FROM clock_timestamp())",
    }.get(dialect, "UNIX_TIMESTAMP(NOW(6))")  # MySQL and MariaDB
    return sa.cast(sa.literal_column(text), sa.Float(precision=53))


def _scheme(url: str) -> str:
    """The dialect of a URL, lower case, without its driver: ``"postgresql"`` for
    ``"PostgreSQL+psycopg://..."``; ``""`` when there is none."""
    return url.split(":", 1)[0].split("+", 1)[0].lower() if ":" in url else ""


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _to_db_time(t: datetime | None) -> datetime | None:
    return None if t is None else t.astimezone(timezone.utc).replace(tzinfo=None)


def _from_db_time(t: datetime | None) -> datetime | None:
    return None if t is None else t.replace(tzinfo=timezone.utc)


class _Statements:
    """The statements of the hot path, built once so SQLAlchemy compiles each only once."""

    def __init__(
        self, sa: Any, dialect: str, studies: Any, trials: Any, inter: Any, beats: Any
    ) -> None:
        s, t, i, h = studies, trials, inter, beats
        b = sa.bindparam
        self.study_by_name = sa.select(s).where(s.c.name == b("p_name"))
        self.studies = sa.select(s).order_by(s.c.id)
        self.next_number = (
            s.update()
            .where(s.c.id == b("p_sid"))
            .values(next_number=s.c.next_number + 1)
            .returning(s.c.next_number)
        )
        self.insert_trial = t.insert().returning(t.c.id)
        self.first_waiting = (
            sa.select(t.c.id)
            .where(t.c.study_id == b("p_sid"), t.c.state == TrialState.WAITING.value)
            .order_by(t.c.number)
            .limit(1)
        )
        w = t.alias("waiting")  # an alias: the subquery must not correlate with the UPDATE
        pick = (
            sa.select(w.c.id)
            .where(w.c.study_id == b("p_sid"), w.c.state == TrialState.WAITING.value)
            .order_by(w.c.number)
            .limit(1)
        )
        if dialect == "postgresql":  # let racing claimers pass each other instead of queueing
            pick = pick.with_for_update(skip_locked=True)
        self.claim = (
            t.update()
            .where(t.c.id == pick.scalar_subquery(), t.c.state == TrialState.WAITING.value)
            .values(
                state=TrialState.RUNNING.value,
                datetime_start=b("p_now", type_=sa.DateTime),
                worker=b("p_worker"),
            )
            .returning(*t.c)
        )
        self.resume = (
            t.update()
            .where(t.c.id == b("p_tid"), t.c.state == TrialState.PAUSED.value)
            .values(state=TrialState.RUNNING.value, value=None, worker=b("p_worker"))
            .returning(*t.c)
        )
        self.set_config = (
            t.update()
            .where(t.c.id == b("p_tid"), t.c.state.in_(_OPEN))
            .values(config=b("p_config"))
        )
        self.set_config_in_study = self.set_config.where(t.c.study_id == b("p_sid"))
        attrs = sa.select(t.c.user_attrs).where(t.c.id == b("p_tid"), t.c.state.in_(_OPEN))
        self.user_attrs = attrs.with_for_update() if dialect == "postgresql" else attrs
        self.set_user_attrs = (
            t.update().where(t.c.id == b("p_tid")).values(user_attrs=b("p_attrs"))
        )
        self.number_state = sa.select(t.c.number, t.c.state).where(t.c.id == b("p_tid"))
        self.set_state = (
            t.update()
            .where(t.c.id == b("p_tid"), t.c.state.in_(b("p_from", expanding=True)))
            .values(
                state=b("p_state"),
                value=b("p_value", type_=sa.Float(precision=53)),
                error=b("p_error"),
                datetime_start=sa.func.coalesce(t.c.datetime_start, b("p_now", type_=sa.DateTime)),
                datetime_complete=b("p_complete", type_=sa.DateTime),
            )
            .returning(*t.c)
        )
        self.trial = sa.select(t).where(t.c.id == b("p_tid"))
        self.trial_inter = (
            sa.select(i.c.step, i.c.value).where(i.c.trial_id == b("p_tid")).order_by(i.c.step)
        )
        self.study_trials = sa.select(t).where(t.c.study_id == b("p_sid")).order_by(t.c.number)
        self.study_trials_in = self.study_trials.where(
            t.c.state.in_(b("p_states", expanding=True))
        )
        self.study_configs = sa.select(t.c.number, t.c.config).where(
            t.c.study_id == b("p_sid"),
            sa.or_(t.c.number > b("p_after"), t.c.number.in_(b("p_numbers", expanding=True))),
        )
        # Takes the study's row lock (SQLite: the write lock BEGIN IMMEDIATE took already),
        # so that two callers storing a config and reading the others' take turns.
        self.lock_study = (
            None
            if dialect == "sqlite"
            else sa.select(s.c.id).where(s.c.id == b("p_sid")).with_for_update()
        )
        # PostgreSQL under REPEATABLE READ would read the snapshot of the transaction's first
        # statement, older than the lock. (MySQL's InnoDB takes its snapshot at the first
        # plain read, after the lock, so it should need nothing; untested, no driver here.)
        self.read_committed = (
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED" if dialect == "postgresql" else None
        )
        join = i.join(t, t.c.id == i.c.trial_id)
        self.study_inter = (
            sa.select(i.c.trial_id, i.c.step, i.c.value)
            .select_from(join)
            .where(t.c.study_id == b("p_sid"))
            .order_by(i.c.trial_id, i.c.step)
        )
        self.study_inter_in = self.study_inter.where(t.c.state.in_(b("p_states", expanding=True)))
        self.study_exists = sa.select(s.c.id).where(s.c.id == b("p_sid"))
        clock = _db_clock(sa, dialect)
        ids = b("p_tids", expanding=True)
        self.forget_beats = h.delete().where(h.c.trial_id.in_(ids))
        running = sa.select(t.c.id, clock).where(
            t.c.id.in_(ids), t.c.state == TrialState.RUNNING.value
        )
        # Two processes may beat for one trial at once (a paused trial resumed elsewhere
        # while the old owner's beat is in flight): delete-then-insert makes one of them
        # fail on the primary key under READ COMMITTED, so overwrite in place instead.
        self.beat_forget_first = dialect not in ("sqlite", "postgresql")
        if self.beat_forget_first:
            self.beat = h.insert().from_select(["trial_id", "beat"], running)
        else:
            from sqlalchemy.dialects import postgresql as _pg
            from sqlalchemy.dialects import sqlite as _sq

            ins = (_sq.insert if dialect == "sqlite" else _pg.insert)(h).from_select(
                ["trial_id", "beat"], running
            )
            self.beat = ins.on_conflict_do_update(
                index_elements=[h.c.trial_id], set_={"beat": ins.excluded.beat}
            )
        self.beat = self.beat.returning(h.c.trial_id)
        silent = sa.exists().where(
            h.c.trial_id == b("p_tid"), clock - h.c.beat > b("p_grace", type_=sa.Float(53))
        )
        self.fail_silent = (
            t.update()
            .where(t.c.id == b("p_tid"), t.c.state == TrialState.RUNNING.value, silent)
            .values(
                state=TrialState.FAILED.value,
                value=None,
                error=b("p_error"),
                datetime_start=sa.func.coalesce(t.c.datetime_start, b("p_now", type_=sa.DateTime)),
                datetime_complete=b("p_now", type_=sa.DateTime),
            )
            .returning(*t.c)
        )
        self.beat_ages = (
            sa.select(h.c.trial_id, (clock - h.c.beat).label("age"))
            .select_from(h.join(t, t.c.id == h.c.trial_id))
            .where(t.c.study_id == b("p_sid"), t.c.state == TrialState.RUNNING.value)
        )
        # Record (or overwrite) a step only while the trial is open: check and write are one
        # statement. SQLite and PostgreSQL share the upsert syntax; others delete then insert.
        src = sa.select(
            b("p_tid", type_=sa.Integer),
            b("p_step", type_=sa.BigInteger),
            b("p_value", type_=sa.Float(precision=53)),
        ).where(sa.exists().where(t.c.id == b("p_tid"), t.c.state.in_(_REPORTABLE)))
        self.report_delete: Any = None
        if dialect in ("sqlite", "postgresql"):
            from sqlalchemy.dialects import postgresql, sqlite

            insert: Any = sqlite.insert if dialect == "sqlite" else postgresql.insert
            upsert = insert(i).from_select(["trial_id", "step", "value"], src)
            self.report = upsert.on_conflict_do_update(
                index_elements=[i.c.trial_id, i.c.step], set_={"value": upsert.excluded.value}
            ).returning(i.c.step)  # rowcount of INSERT ... SELECT is not reliable everywhere
        else:
            self.report_delete = i.delete().where(
                i.c.trial_id == b("p_tid"), i.c.step == b("p_step")
            )
            self.report = (
                i.insert().from_select(["trial_id", "step", "value"], src).returning(i.c.step)
            )


class SQLStorage(Storage):
    """Studies and trials in a SQL database.

    Args:
        url: A SQLAlchemy URL: ``sqlite:///path/to/file.db`` (WAL journal, 60 s busy timeout)
            or ``postgresql://user@host:port/db`` (the ``postgres`` extra).
        engine_kwargs: Extra arguments for :func:`sqlalchemy.create_engine` (not mutated).

    Raises:
        InvalidParameterError: The URL's scheme is not a SQL database tunecraft knows.
        StorageError: The database cannot be opened (one line saying why).
        SchemaVersionError: The database was written with another schema version.

    Example:
        >>> import tunecraft as tc
        >>> storage = tc.storage.get_storage("sqlite:///:memory:")
        >>> storage.create_study("demo", "minimize", {}).name
        'demo'
    """

    def __init__(self, url: str, *, engine_kwargs: dict[str, Any] | None = None) -> None:
        from tunecraft._imports import require

        if not isinstance(url, str):
            raise TypeError(f"The 'url' parameter of SQLStorage must be a str, got {url!r}.")
        scheme = _scheme(url)
        if scheme not in _KNOWN_SCHEMES:
            raise InvalidParameterError(
                f"The 'url' parameter of SQLStorage must be a database URL such as "
                f"'sqlite:///tunecraft.db' or 'postgresql://user@host/db', got {_redact(url)!r}."
            )
        sa_mod = require("sqlalchemy", "core", purpose="SQL storage")
        self._sa = sa_mod
        self.url = url
        self._engine_kwargs = dict(engine_kwargs or {})
        driver_url = _driver_url(url)
        kwargs = dict(self._engine_kwargs)
        self._is_sqlite = scheme == "sqlite"
        self._lock: AbstractContextManager[Any] = nullcontext()
        if self._is_sqlite:
            path = _sqlite_path(driver_url)
            if path is None:  # in memory: one connection, shared by this process only
                kwargs.setdefault("poolclass", sa_mod.pool.StaticPool)
                self.url = None
                self._lock = threading.RLock()
            else:
                folder = os.path.dirname(os.path.abspath(path))
                if not os.path.isdir(folder):
                    raise StorageError(
                        f"Cannot open storage '{url}': the folder '{folder}' does not exist; "
                        "create it or choose another path."
                    )
            kwargs.setdefault("connect_args", {"timeout": 60.0, "check_same_thread": False})
        elif scheme in ("postgresql", "postgres"):
            kwargs.setdefault("pool_pre_ping", True)
            kwargs.setdefault("connect_args", {"connect_timeout": 10})
        try:
            self._engine = sa_mod.create_engine(driver_url, **kwargs)
        except ImportError as exc:  # the dialect's driver
            raise StorageError(
                f"Cannot open storage '{_redact(url)}': its database driver is not installed "
                f"({exc}); install it, or name an installed driver as in 'dialect+driver://'."
            ) from None
        except Exception as exc:  # bad URL syntax, unknown dialect
            raise StorageError(
                f"Cannot open storage '{_redact(url)}': {_first_line(exc)}"
            ) from None
        if self._is_sqlite:
            sa_mod.event.listen(self._engine, "connect", _sqlite_on_connect)
        # SQLAlchemy's engine sits in reference cycles, so without this a storage dropped
        # unclosed (``tc.list_studies(url)``) would keep its file handles or server
        # connections until the garbage collector's next full pass.
        self._finalizer = weakref.finalize(self, _dispose, self._engine, os.getpid())
        (self._md, self._meta, self._studies, self._trials, self._inter, self._beats) = _tables(
            sa_mod
        )
        self._q = _Statements(
            sa_mod,
            self._engine.dialect.name,
            self._studies,
            self._trials,
            self._inter,
            self._beats,
        )
        self._open()

    # -- opening -------------------------------------------------------------------------------
    def _open(self) -> None:
        sa = self._sa
        meta = self._meta
        read = sa.select(meta.c.value).where(meta.c.key == "schema_version")
        try:
            for attempt in range(5):
                try:
                    self._md.create_all(
                        self._engine,
                        tables=[self._meta, self._studies, self._trials, self._inter],
                        checkfirst=True,
                    )
                    break
                except sa.exc.DatabaseError:  # another process created the tables meanwhile
                    if attempt == 4:
                        raise
                    time.sleep(0.05 * (attempt + 1))
            stored = self._transaction(lambda conn: conn.execute(read).scalar(), write=False)
            if stored is None:
                with contextlib.suppress(sa.exc.IntegrityError):  # another process was first
                    self._transaction(
                        lambda conn: conn.execute(
                            meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION))
                        ),
                        write=True,
                    )
                stored = self._transaction(lambda conn: conn.execute(read).scalar(), write=False)
        except Exception as exc:  # database errors, and drivers' own (a NUL in a path...)
            self._engine.dispose()
            raise StorageError(
                f"Cannot open storage '{_redact(str(self.url or 'sqlite://'))}': "
                f"{_first_line(exc)}"
            ) from None
        try:
            version = int(str(stored))
        except (TypeError, ValueError):
            version = -1
        if version != SCHEMA_VERSION:
            self._engine.dispose()
            raise SchemaVersionError(
                f"Storage '{_redact(str(self.url))}' has schema version {stored}, but this "
                f"tunecraft reads version {SCHEMA_VERSION}; use a matching tunecraft release."
            )
        if self._engine.dialect.name == "postgresql":
            self._widen_steps()
        self._has_beats = self._create_beats()

    def _create_beats(self) -> bool:
        """Create the heartbeat table of a database from before it; a user not allowed to
        create tables still opens the database, without heartbeats."""
        sa = self._sa
        try:
            self._beats.create(self._engine, checkfirst=True)
            return True
        except sa.exc.SQLAlchemyError as exc:
            if sa.inspect(self._engine).has_table("tunecraft_heartbeats"):
                return True  # another process created it meanwhile
            _log.warning(
                "Storage '%s' has no heartbeat table and could not create it (%s); "
                "Study(heartbeat_interval=...) will not work on it.",
                _redact(str(self.url)),
                _first_line(exc),
            )
            return False

    def _widen_steps(self) -> None:
        """Widen the step column of a PostgreSQL database created with a 32-bit one (before
        tunecraft made it 64 bits): the same schema version, read the same by every release.

        A user not allowed to alter the table gets a warning, and steps below 2**31 work."""
        sa = self._sa
        sql = sa.text(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = 'tunecraft_intermediate' AND column_name = 'step'"
        )
        alter = "ALTER TABLE tunecraft_intermediate ALTER COLUMN step TYPE BIGINT"
        try:
            if self._transaction(lambda conn: conn.execute(sql).scalar(), write=None) == "integer":
                self._transaction(lambda conn: conn.exec_driver_sql(alter), write=True)
        except sa.exc.SQLAlchemyError as exc:
            _log.warning(
                "Storage '%s' stores steps as 32-bit integers and could not widen them (%s); "
                "steps from 2**31 on will fail. The table's owner can run: %s",
                _redact(str(self.url)),
                _first_line(exc),
                alter,
            )

    def close(self) -> None:
        self._engine.dispose()

    def after_fork(self) -> None:
        # The parent's pooled connections must be neither used nor closed here: closing would
        # end the parent's sessions on the shared sockets (or, for SQLite, touch the parent's
        # locks and WAL). Keep the old pool referenced so garbage collection never closes them.
        self._inherited_pools = [*getattr(self, "_inherited_pools", []), self._engine.pool]
        self._engine.dispose(close=False)
        self._finalizer.detach()  # from now on the pool is this process's own to close
        self._finalizer = weakref.finalize(self, _dispose, self._engine, os.getpid())

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent by its URL, and opened once per receiving process (see _reopen).
        if self.url is None:
            raise TypeError("An in-memory SQLite storage cannot be sent to another process.")
        return (_reopen, (self.url, self._engine_kwargs))

    def __repr__(self) -> str:
        return f"SQLStorage({_redact(str(self.url or 'sqlite:///:memory:'))!r})"

    def _run(self, what: str, fn: Callable[[Connection], _T], *, write: bool | None = True) -> _T:
        """Run ``fn(conn)`` in one transaction, turning database errors into one-liners.

        ``write``: True when ``fn`` writes, False when it reads with several statements (one
        snapshot), None when it runs a single read statement (no explicit transaction needed).

        ``IntegrityError`` passes through for the caller to interpret.
        """
        sa = self._sa
        try:
            return self._transaction(fn, write=write)
        except sa.exc.IntegrityError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(
                f"{what} failed on '{_redact(str(self.url or 'sqlite://'))}': {_first_line(exc)}"
            ) from exc

    def _transaction(self, fn: Callable[[Connection], _T], *, write: bool | None) -> _T:
        """``write``: True for writes, False for multi-statement reads, None for one read."""
        with self._lock, self._engine.begin() as conn:
            if self._is_sqlite and write is not None:
                conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
            return fn(conn)

    # -- studies -------------------------------------------------------------------------------
    def create_study(self, name: str, direction: str, space: dict[str, Any]) -> StudyInfo:
        sa = self._sa
        created = utcnow()
        space_text = dumps_json(space, "create_study: the space")

        def fn(conn: Connection) -> int:
            result = conn.execute(
                self._studies.insert()
                .values(
                    name=name,
                    direction=direction,
                    space=space_text,
                    next_number=0,
                    created=_to_db_time(created),
                )
                .returning(self._studies.c.id)
            )
            return int(result.scalar_one())

        try:
            sid = self._run("create_study", fn)
        except sa.exc.IntegrityError:
            raise DuplicatedStudyError(f"A study named '{name}' already exists.") from None
        return StudyInfo(sid, name, direction, json.loads(space_text), created)

    @staticmethod
    def _study_info(row: Any) -> StudyInfo:
        return StudyInfo(
            int(row.id),
            row.name,
            row.direction,
            json.loads(row.space),
            _from_db_time(row.created),
            int(row.next_number),  # numbers are dense and trials are never deleted one by one
        )

    def get_study(self, name: str) -> StudyInfo:
        row = self._run(
            "get_study",
            lambda conn: conn.execute(self._q.study_by_name, {"p_name": name}).first(),
            write=None,
        )
        if row is None:
            if self.url is None:  # in this process's memory: no URL to list it with
                raise StudyNotFoundError(f"No study named '{name}' in this in-memory storage.")
            raise StudyNotFoundError(
                f"No study named '{name}' in '{_redact(self.url)}'; "
                "`tunecraft studies --storage URL` lists the studies there."
            )
        return self._study_info(row)

    def list_studies(self) -> list[StudyInfo]:
        rows = self._run(
            "list_studies", lambda conn: conn.execute(self._q.studies).all(), write=None
        )
        return [self._study_info(r) for r in rows]

    def delete_study(self, study_id: int) -> None:
        sa = self._sa
        s, t, i = self._studies, self._trials, self._inter

        def fn(conn: Connection) -> int:
            if self._q.lock_study is not None:  # first, as set_trial_config_and_read does
                conn.execute(self._q.lock_study, {"p_sid": study_id})
            ids = sa.select(t.c.id).where(t.c.study_id == study_id)
            conn.execute(i.delete().where(i.c.trial_id.in_(ids)))
            if self._has_beats:
                conn.execute(self._beats.delete().where(self._beats.c.trial_id.in_(ids)))
            conn.execute(t.delete().where(t.c.study_id == study_id))
            return int(conn.execute(s.delete().where(s.c.id == study_id)).rowcount)

        if self._run("delete_study", fn) == 0:
            raise StudyNotFoundError(f"No study with id {study_id}.")

    # -- trials --------------------------------------------------------------------------------
    def create_trial(
        self,
        study_id: int,
        *,
        state: TrialState = TrialState.RUNNING,
        config: dict[str, Any] | None = None,
        worker: str | None = None,
    ) -> FrozenTrial:
        if state not in (TrialState.RUNNING, TrialState.WAITING):
            raise TrialStateError(f"A new trial is running or waiting, not {state.value}.")
        config_text = dumps_json(dict(config or {}), "create_trial: the config")
        start = utcnow() if state is TrialState.RUNNING else None
        worker = worker if state is TrialState.RUNNING else None
        q = self._q

        def fn(conn: Connection) -> tuple[int, int]:
            number = conn.execute(q.next_number, {"p_sid": study_id}).scalar()
            if number is None:
                raise StudyNotFoundError(f"No study with id {study_id}.")
            number = int(number) - 1
            tid = conn.execute(
                q.insert_trial,
                {
                    "study_id": study_id,
                    "number": number,
                    "state": state.value,
                    "config": config_text,
                    "user_attrs": "{}",
                    "worker": worker,
                    "datetime_start": _to_db_time(start),
                },
            ).scalar_one()
            return number, int(tid)

        number, tid = self._run("create_trial", fn)
        return FrozenTrial(
            number=number,
            state=state,
            config=json.loads(config_text),
            datetime_start=start,
            trial_id=tid,
            worker=worker,
        )

    def claim_waiting_trial(self, study_id: int, worker: str) -> FrozenTrial | None:
        q = self._q
        while True:
            # A cheap read first: on the hot path nothing waits, and no write lock is taken.
            tid = self._run(
                "claim_waiting_trial",
                lambda conn: conn.execute(q.first_waiting, {"p_sid": study_id}).scalar(),
                write=None,
            )
            if tid is None:
                return None
            # The state test in the WHERE makes the claim atomic: of two processes racing for
            # the same trial, one updates the row and the other updates none and looks again.
            params = {"p_sid": study_id, "p_now": _to_db_time(utcnow()), "p_worker": worker}
            row = self._run(
                "claim_waiting_trial",
                lambda conn, params=params: conn.execute(q.claim, params).first(),  # type: ignore[misc]
            )
            if row is not None:
                return self._record(row, {})  # a waiting trial has reported nothing

    def resume_trial(self, trial_id: int, worker: str) -> FrozenTrial:
        q = self._q

        def fn(conn: Connection) -> FrozenTrial:
            row = conn.execute(q.resume, {"p_tid": trial_id, "p_worker": worker}).first()
            if row is None:
                found = conn.execute(q.number_state, {"p_tid": trial_id}).first()
                if found is None:
                    raise TrialStateError(f"resume_trial: no trial with id {trial_id}.")
                raise TrialStateError(
                    f"resume_trial: trial {found.number} is {found.state}, not paused."
                )
            if self._has_beats:  # from before its pause
                conn.execute(q.forget_beats, {"p_tids": [trial_id]})
            return self._record_of_row(conn, row, trial_id)

        return self._run("resume_trial", fn)

    def _raise_not_open(self, conn: Any, trial_id: int, what: str) -> None:
        row = conn.execute(self._q.number_state, {"p_tid": trial_id}).first()
        if row is None:
            raise TrialStateError(f"{what}: no trial with id {trial_id}.")
        raise TrialStateError(f"{what}: trial {row.number} is {row.state}.")

    def set_trial_config(self, trial_id: int, config: dict[str, Any]) -> None:
        params = {
            "p_tid": trial_id,
            "p_config": dumps_json(config, "set_trial_config: the config"),
        }

        def fn(conn: Connection) -> None:
            if conn.execute(self._q.set_config, params).rowcount == 0:
                self._raise_not_open(conn, trial_id, "set_trial_config")

        self._run("set_trial_config", fn)

    def report(self, trial_id: int, step: int, value: float) -> None:
        self._report(trial_id, {step: value}, "report")

    def report_many(self, trial_id: int, values: Mapping[int, float]) -> None:
        if values:
            self._report(trial_id, values, "report_many")

    def _report(self, trial_id: int, values: Mapping[int, float], what: str) -> None:
        rows = []
        for step, value in values.items():
            value = float(value)
            if not math.isfinite(value):
                raise InvalidParameterError(f"{what}: value must be finite, got {value!r}.")
            rows.append({"p_tid": trial_id, "p_step": int(step), "p_value": value})
        q = self._q

        def fn(conn: Connection) -> None:
            for params in rows:  # one transaction: one commit, not one a step
                if q.report_delete is not None:
                    conn.execute(q.report_delete, params)
                if conn.execute(q.report, params).first() is None:
                    self._raise_not_open(conn, trial_id, what)

        self._run(what, fn)

    def set_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_attrs(trial_id, {key: value}, "set_user_attr")

    def set_user_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        if attrs:
            self._set_attrs(trial_id, attrs, "set_user_attrs")

    def _set_attrs(self, trial_id: int, attrs: Mapping[str, Any], what: str) -> None:
        # Stored as JSON: keep what a reader will get back.
        new = {
            k: json.loads(dumps_json(v, f"{what}: the value of {k!r}")) for k, v in attrs.items()
        }
        q = self._q

        def fn(conn: Connection) -> None:
            text = conn.execute(q.user_attrs, {"p_tid": trial_id}).scalar()
            if text is None:
                self._raise_not_open(conn, trial_id, what)
            stored = {**json.loads(str(text)), **new}
            conn.execute(
                q.set_user_attrs,
                {"p_tid": trial_id, "p_attrs": dumps_json(stored, f"{what}: the attributes")},
            )

        self._run(what, fn)

    def set_state(
        self,
        trial_id: int,
        state: TrialState,
        *,
        value: float | None = None,
        error: str | None = None,
        expected: Container[TrialState] | None = None,
    ) -> FrozenTrial:
        sources = [s.value for s, allowed in TRANSITIONS.items() if state in allowed]
        if expected is not None:
            sources = [s for s in sources if TrialState(s) in expected]
        if value is not None:
            value = float(value)
            if not math.isfinite(value):
                raise InvalidParameterError(f"set_state: value must be finite, got {value!r}.")
        if error is not None and "\x00" in error and self._engine.dialect.name == "postgresql":
            # PostgreSQL's text refuses NUL; the objective's error message may hold one, and
            # failing to record it would leave the trial running and stop the study.
            error = error.replace("\x00", "\\x00")
        now = _to_db_time(utcnow())
        params = {
            "p_tid": trial_id,
            "p_from": sources or ["-"],  # an empty IN list: nothing may change
            "p_state": state.value,
            "p_value": value,
            "p_error": error,
            "p_now": now,
            "p_complete": now if state.is_finished else None,
        }
        q = self._q

        def fn(conn: Connection) -> FrozenTrial:
            row = conn.execute(q.set_state, params).first()
            if row is None:
                found = conn.execute(q.number_state, {"p_tid": trial_id}).first()
                if found is None:
                    raise TrialStateError(f"No trial with id {trial_id}.")
                raise TrialStateError(
                    f"Trial {found.number} is {found.state}; it cannot become {state.value}."
                )
            if state is TrialState.RUNNING and self._has_beats:  # its old beat says nothing
                conn.execute(q.forget_beats, {"p_tids": [trial_id]})
            return self._record_of_row(conn, row, trial_id)

        return self._run("set_state", fn)

    def _record_of_row(self, conn: Connection, row: Any, trial_id: int) -> FrozenTrial:
        """The record of a trial row just read, with its intermediate values."""
        inter = {
            int(r.step): float(r.value)
            for r in conn.execute(self._q.trial_inter, {"p_tid": trial_id})
        }
        return self._record(row, inter)

    @staticmethod
    def _record(r: Any, inter: dict[int, float]) -> FrozenTrial:
        return FrozenTrial(
            number=int(r.number),
            state=TrialState(r.state),
            config=json.loads(r.config),
            value=None if r.value is None else float(r.value),
            intermediate=inter,
            user_attrs=json.loads(r.user_attrs),
            datetime_start=_from_db_time(r.datetime_start),
            datetime_complete=_from_db_time(r.datetime_complete),
            error=r.error,
            trial_id=int(r.id),
            worker=r.worker,
        )

    def get_trial(self, trial_id: int) -> FrozenTrial:
        q = self._q

        def fn(conn: Connection) -> FrozenTrial | None:
            row = conn.execute(q.trial, {"p_tid": trial_id}).first()
            if row is None:
                return None
            return self._record_of_row(conn, row, trial_id)

        record = self._run("get_trial", fn, write=False)
        if record is None:
            raise TrialStateError(f"No trial with id {trial_id}.")
        return record

    def get_trials(
        self, study_id: int, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        q = self._q
        params: dict[str, Any] = {"p_sid": study_id}
        if states is None:
            q_trials, q_inter = q.study_trials, q.study_inter
        else:
            q_trials, q_inter = q.study_trials_in, q.study_inter_in
            params["p_states"] = [s.value for s in TrialState if s in states] or ["-"]

        def fn(conn: Connection) -> list[FrozenTrial]:
            rows = conn.execute(q_trials, params).all()
            if not rows:
                if conn.execute(q.study_exists, {"p_sid": study_id}).first() is None:
                    raise StudyNotFoundError(f"No study with id {study_id}.")
                return []
            inter: dict[int, dict[int, float]] = {int(r.id): {} for r in rows}
            for tid, step, v in conn.execute(q_inter, params):
                if tid in inter:  # a trial that changed state between the two reads
                    inter[tid][int(step)] = float(v)
            return [self._record(r, inter[int(r.id)]) for r in rows]

        return self._run("get_trials", fn, write=False)

    def set_trial_config_and_read(
        self,
        trial_id: int,
        config: dict[str, Any],
        *,
        study_id: int,
        after: int,
        numbers: Collection[int] = (),
    ) -> dict[int, dict[str, Any]]:
        q = self._q
        params = {
            "p_tid": trial_id,
            "p_sid": study_id,
            "p_config": dumps_json(config, "set_trial_config: the config"),
            "p_after": int(after),
            "p_numbers": sorted({int(n) for n in numbers}) or [-1],
        }

        def fn(conn: Connection) -> dict[int, dict[str, Any]]:
            if q.read_committed is not None:  # the read must see what a lock holder wrote
                conn.exec_driver_sql(q.read_committed)
            if q.lock_study is not None and conn.execute(q.lock_study, params).first() is None:
                raise StudyNotFoundError(f"No study with id {study_id}.")
            if conn.execute(q.set_config_in_study, params).rowcount == 0:
                row = conn.execute(q.number_state, params).first()
                if row is not None and row.state in _OPEN:
                    raise InvalidParameterError(f"Trial {trial_id} is not in study {study_id}.")
                self._raise_not_open(conn, trial_id, "set_trial_config")
            rows = conn.execute(q.study_configs, params).all()
            return {int(r.number): json.loads(r.config) for r in rows}

        return self._run("set_trial_config_and_read", fn)

    # -- heartbeats ------------------------------------------------------------------------------
    def record_heartbeat(self, trial_ids: Sequence[int]) -> list[int]:
        ids = sorted({int(i) for i in trial_ids})
        if not ids:
            return []
        if not self._has_beats:
            raise StorageError(
                f"Storage '{_redact(str(self.url))}' has no heartbeat table (it could not be "
                "created when it was opened: the database user may create no tables)."
            )
        q = self._q

        def fn(conn: Connection) -> set[int]:
            if q.beat_forget_first:
                conn.execute(q.forget_beats, {"p_tids": ids})
            return {int(r[0]) for r in conn.execute(q.beat, {"p_tids": ids})}

        alive = self._run("record_heartbeat", fn)
        return [i for i in ids if i not in alive]

    def fail_if_silent(self, trial_id: int, grace: float, error: str) -> FrozenTrial | None:
        if not self._has_beats:
            raise StorageError(f"Storage '{_redact(str(self.url))}' has no heartbeat table.")
        params = {
            "p_tid": trial_id,
            "p_grace": float(grace),
            "p_error": error,
            "p_now": _to_db_time(utcnow()),
        }

        def fn(conn: Connection) -> FrozenTrial | None:
            row = conn.execute(self._q.fail_silent, params).first()
            return None if row is None else self._record_of_row(conn, row, trial_id)

        return self._run("fail_if_silent", fn)

    def heartbeat_ages(self, study_id: int) -> dict[int, float]:
        if not self._has_beats:
            raise StorageError(f"Storage '{_redact(str(self.url))}' has no heartbeat table.")

        def fn(conn: Connection) -> dict[int, float]:
            if conn.execute(self._q.study_exists, {"p_sid": study_id}).first() is None:
                raise StudyNotFoundError(f"No study with id {study_id}.")
            rows = conn.execute(self._q.beat_ages, {"p_sid": study_id})
            return {int(tid): float(age) for tid, age in rows}

        return self._run("heartbeat_ages", fn, write=False)


# Storages unpickled in this process, by (pid, URL, engine options). A cluster sends a copy of
# the study with every trial (Study.optimize(executor=...)); opening the database for each one
# cost 85 ms a trial on the local PostgreSQL and 20 ms on SQLite, and the connections of the
# copies outlived them until a garbage collection: PostgreSQL refused new clients after some
# dozens of trials (benchmarks/executors.py).
_REOPENED: dict[tuple[int, str, str], SQLStorage] = {}
_REOPEN_LOCK = threading.Lock()


def _reopen(url: str, engine_kwargs: dict[str, Any]) -> SQLStorage:
    """The storage at ``url``, opened once per process (pickled storages arrive here).

    A SQLite file is opened without a connection pool (unless the engine options name one):
    a file deleted and created again at the same path, perhaps with the same inode number,
    must not be written through connections to the old one."""
    kwargs = dict(engine_kwargs)
    if _scheme(url) == "sqlite":
        from sqlalchemy.pool import NullPool

        kwargs.setdefault("poolclass", NullPool)
    try:
        key = (os.getpid(), url, repr(_stable(engine_kwargs)))
    except TypeError:  # an option sent by value (a closure, an object): each copy is new
        fresh = SQLStorage(url, engine_kwargs=kwargs)
        fresh._engine_kwargs = dict(engine_kwargs)
        return fresh  # not cached: it is closed when the task drops it, as before
    with _REOPEN_LOCK:
        cached = _REOPENED.get(key)
        if cached is None:
            cached = _REOPENED[key] = SQLStorage(url, engine_kwargs=kwargs)
            cached._engine_kwargs = dict(engine_kwargs)  # what it is sent on with
        return cached


def _stable(value: Any) -> Any:
    """``value`` as plain data that is equal in every copy unpickled from one pickle, or
    ``TypeError``: a repr with an object's address would make each copy a new cache key."""
    if value is None or isinstance(value, (str, int, float, bool, bytes)):
        return value
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((str(k), _stable(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("seq", tuple(_stable(v) for v in value))
    name = getattr(value, "__qualname__", None)
    if isinstance(value, type) or (callable(value) and name is not None):
        module = getattr(value, "__module__", None)
        if module and name and "<" not in name:  # pickled by reference: the same object
            return ("ref", module, name)
    raise TypeError(type(value).__name__)


def _dispose(engine: Any, pid: int) -> None:
    """Close the pooled connections of a storage no longer used, in the process that opened
    them; a forked child that never called ``after_fork`` only forgets the parent's."""
    engine.dispose(close=os.getpid() == pid)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite://`` URL, or ``None`` for an in-memory database."""
    rest = url.split("://", 1)[1] if "://" in url else ""
    path = rest[1:] if rest.startswith("/") else rest
    path = path.split("?", 1)[0]
    if path in ("", ":memory:") or path.startswith("file::memory:"):
        return None
    return path


def _driver_url(url: str) -> str:
    """Pick an installed PostgreSQL driver for a plain ``postgresql://`` URL.

    The scheme is lowered first: URL schemes ignore case, SQLAlchemy's dialect names do not.
    """
    if ":" in url:
        head, rest = url.split(":", 1)
        url = f"{head.lower()}:{rest}"
    if url.startswith(("postgresql://", "postgres://")):
        import importlib.util

        rest = url.split("://", 1)[1]
        if importlib.util.find_spec("psycopg") is not None:
            return "postgresql+psycopg://" + rest
        if importlib.util.find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + rest
        from tunecraft.exceptions import MissingDependencyError

        raise MissingDependencyError(
            "A PostgreSQL storage needs a driver; install it with: "
            'pip install "tunecraft[postgres]"'
        )
    if url.startswith("postgres+"):
        return "postgresql+" + url.split("+", 1)[1]
    return url


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Transactions are begun explicitly by SQLStorage._run (BEGIN IMMEDIATE for writes); the
    # driver's own implicit BEGIN (before DML only, never before SELECT) would let a
    # read-then-write lose an update and would make SAVEPOINTs misbehave.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
