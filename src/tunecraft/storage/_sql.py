"""Storage in a SQL database through SQLAlchemy Core: SQLite embedded, PostgreSQL shared.

Schema (version :data:`SCHEMA_VERSION`, checked on open)::

    tunecraft_meta          key, value                      ("schema_version" -> "1")
    tunecraft_studies       id, name (unique), direction, space (JSON), next_number, created
    tunecraft_trials        id, study_id, number, state, config, value, user_attrs, error,
                            worker, datetime_start, datetime_complete; unique (study_id, number)
    tunecraft_intermediate  trial_id, step, value; primary key (trial_id, step)

Every public method runs in one transaction. Trial numbers come from the study row's
``next_number`` counter, incremented by a single ``UPDATE ... RETURNING``: the database's row
lock serialises concurrent writers, so numbers are unique and dense without a table scan.
State changes are ``UPDATE ... WHERE state IN (allowed)``: the check and the write are one
statement, so two processes can never both finish the same trial.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Container, Iterable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tunecraft.exceptions import (
    DuplicatedStudyError,
    InvalidParameterError,
    SchemaVersionError,
    StorageError,
    StudyNotFoundError,
    TrialStateError,
)
from tunecraft.storage._base import TRANSITIONS, Storage, StudyInfo, utcnow
from tunecraft.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["SCHEMA_VERSION", "SQLStorage"]

SCHEMA_VERSION = 1


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
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("value", sa.Float(precision=53), nullable=False),
    )
    return md, meta, studies, trials, intermediate


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _to_db_time(t: datetime | None) -> datetime | None:
    return None if t is None else t.astimezone(timezone.utc).replace(tzinfo=None)


def _from_db_time(t: datetime | None) -> datetime | None:
    return None if t is None else t.replace(tzinfo=timezone.utc)


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"Value {value!r} is not JSON-serializable: {exc}.") from None


class SQLStorage(Storage):
    """Studies and trials in a SQL database.

    Args:
        url: A SQLAlchemy URL: ``sqlite:///path/to/file.db`` (WAL journal, 60 s busy timeout)
            or ``postgresql://user@host:port/db`` (the ``postgres`` extra).
        engine_kwargs: Extra arguments for :func:`sqlalchemy.create_engine` (not mutated).

    Example:
        >>> import tunecraft as tc
        >>> storage = tc.storage.get_storage("sqlite:///:memory:")
    """

    def __init__(self, url: str, *, engine_kwargs: dict[str, Any] | None = None) -> None:
        from tunecraft._imports import require

        sa_mod = require("sqlalchemy", "core", purpose="SQL storage")
        self._sa = sa_mod
        self.url = url
        driver_url = _driver_url(url)
        kwargs = dict(engine_kwargs or {})
        self._is_sqlite = driver_url.startswith("sqlite")
        if self._is_sqlite:
            path = driver_url.split("///", 1)[1] if "///" in driver_url else ""
            if path in ("", ":memory:"):
                kwargs.setdefault("poolclass", sa_mod.pool.StaticPool)
                self.url = None  # not shareable with other processes
            kwargs.setdefault("connect_args", {"timeout": 60.0, "check_same_thread": False})
        else:
            kwargs.setdefault("pool_pre_ping", True)
        try:
            self._engine = sa_mod.create_engine(driver_url, **kwargs)
        except Exception as exc:  # bad URL syntax, unknown dialect, missing driver
            raise StorageError(
                f"Cannot open storage '{_redact(url)}': {_first_line(exc)}"
            ) from None
        if self._is_sqlite:
            sa_mod.event.listen(self._engine, "connect", _sqlite_pragmas)
        (self._md, self._meta, self._studies, self._trials, self._inter) = _tables(sa_mod)
        self._open()

    # -- opening -------------------------------------------------------------------------------
    def _open(self) -> None:
        sa = self._sa
        try:
            for attempt in range(3):
                try:
                    self._md.create_all(self._engine, checkfirst=True)
                    break
                except sa.exc.DatabaseError:  # another process created the tables meanwhile
                    if attempt == 2:
                        raise
            with self._engine.begin() as conn:
                row = conn.execute(
                    sa.select(self._meta.c.value).where(self._meta.c.key == "schema_version")
                ).first()
                if row is None:
                    try:
                        with conn.begin_nested():
                            conn.execute(
                                self._meta.insert().values(
                                    key="schema_version", value=str(SCHEMA_VERSION)
                                )
                            )
                        version = SCHEMA_VERSION
                    except sa.exc.IntegrityError:
                        version = int(
                            conn.execute(
                                sa.select(self._meta.c.value).where(
                                    self._meta.c.key == "schema_version"
                                )
                            ).scalar_one()
                        )
                else:
                    version = int(row[0])
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(
                f"Cannot open storage '{_redact(str(self.url or 'sqlite://'))}': "
                f"{_first_line(exc)}"
            ) from None
        if version != SCHEMA_VERSION:
            raise SchemaVersionError(
                f"Storage '{_redact(str(self.url))}' has schema version {version}, but this "
                f"tunecraft reads version {SCHEMA_VERSION}; use a matching tunecraft release."
            )

    def close(self) -> None:
        self._engine.dispose()

    def after_fork(self) -> None:
        # The parent's pooled connections must be neither used nor closed here: closing would
        # end the parent's sessions on the shared sockets.
        self._engine.dispose(close=False)

    def __getstate__(self) -> dict[str, Any]:
        if self.url is None:
            raise TypeError("An in-memory SQLite storage cannot be sent to another process.")
        return {"url": self.url}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"])  # type: ignore[misc]

    def _run(self, what: str, fn: Any) -> Any:
        """Run ``fn(conn)`` in one transaction, turning database errors into one-liners."""
        sa = self._sa
        try:
            with self._engine.begin() as conn:
                return fn(conn)
        except sa.exc.OperationalError as exc:
            raise StorageError(f"{what} failed: {_first_line(exc)}") from exc

    # -- studies -------------------------------------------------------------------------------
    def create_study(self, name: str, direction: str, space: dict[str, Any]) -> StudyInfo:
        sa = self._sa
        created = utcnow()

        def fn(conn: Connection) -> int:
            result = conn.execute(
                self._studies.insert().values(
                    name=name,
                    direction=direction,
                    space=_dumps(space),
                    next_number=0,
                    created=_to_db_time(created),
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

        try:
            sid = self._run("create_study", fn)
        except sa.exc.IntegrityError:
            raise DuplicatedStudyError(f"A study named '{name}' already exists.") from None
        return StudyInfo(sid, name, direction, space, created)

    def _study_query(self) -> Any:
        sa = self._sa
        s, t = self._studies, self._trials
        n_trials = (
            sa.select(sa.func.count())
            .where(t.c.study_id == s.c.id)
            .correlate(s)
            .scalar_subquery()
            .label("n_trials")
        )
        return sa.select(s.c.id, s.c.name, s.c.direction, s.c.space, s.c.created, n_trials)

    @staticmethod
    def _study_info(row: Any) -> StudyInfo:
        return StudyInfo(
            int(row.id),
            row.name,
            row.direction,
            json.loads(row.space),
            _from_db_time(row.created),
            int(row.n_trials),
        )

    def get_study(self, name: str) -> StudyInfo:
        q = self._study_query().where(self._studies.c.name == name)
        row = self._run("get_study", lambda conn: conn.execute(q).first())
        if row is None:
            raise StudyNotFoundError(
                f"No study named '{name}' in '{_redact(str(self.url))}'; "
                "`tunecraft studies --storage URL` lists the studies there."
            )
        return self._study_info(row)

    def list_studies(self) -> list[StudyInfo]:
        q = self._study_query().order_by(self._studies.c.id)
        rows = self._run("list_studies", lambda conn: conn.execute(q).all())
        return [self._study_info(r) for r in rows]

    def delete_study(self, study_id: int) -> None:
        sa = self._sa
        s, t, i = self._studies, self._trials, self._inter

        def fn(conn: Connection) -> int:
            ids = sa.select(t.c.id).where(t.c.study_id == study_id)
            conn.execute(i.delete().where(i.c.trial_id.in_(ids)))
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
        s, t = self._studies, self._trials
        config = dict(config or {})
        config_text = _dumps(config)
        start = utcnow() if state is TrialState.RUNNING else None
        worker = worker if state is TrialState.RUNNING else None

        def fn(conn: Connection) -> tuple[int, int]:
            number = conn.execute(
                s.update()
                .where(s.c.id == study_id)
                .values(next_number=s.c.next_number + 1)
                .returning(s.c.next_number)
            ).scalar()
            if number is None:
                raise StudyNotFoundError(f"No study with id {study_id}.")
            number = int(number) - 1
            result = conn.execute(
                t.insert().values(
                    study_id=study_id,
                    number=number,
                    state=state.value,
                    config=config_text,
                    user_attrs="{}",
                    worker=worker,
                    datetime_start=_to_db_time(start),
                )
            )
            return number, int(result.inserted_primary_key[0])  # type: ignore[index]

        number, tid = self._run("create_trial", fn)
        return FrozenTrial(
            number=number,
            state=state,
            config=config,
            datetime_start=start,
            trial_id=tid,
            worker=worker,
        )

    def claim_waiting_trial(self, study_id: int, worker: str) -> FrozenTrial | None:
        sa = self._sa
        t = self._trials
        while True:
            tid = self._run(
                "claim_waiting_trial",
                lambda conn: conn.execute(
                    sa.select(t.c.id)
                    .where(t.c.study_id == study_id, t.c.state == TrialState.WAITING.value)
                    .order_by(t.c.number)
                    .limit(1)
                ).scalar(),
            )
            if tid is None:
                return None
            # The state test in the WHERE makes the claim atomic: of two processes racing for
            # the same trial, one updates a row and the other updates none and looks again.
            now = _to_db_time(utcnow())
            claimed = self._run(
                "claim_waiting_trial",
                lambda conn, tid=tid, now=now: (
                    conn.execute(
                        t.update()
                        .where(t.c.id == tid, t.c.state == TrialState.WAITING.value)
                        .values(state=TrialState.RUNNING.value, datetime_start=now, worker=worker)
                    ).rowcount
                ),
            )
            if claimed:
                return self.get_trial(int(tid))

    def _update_open_trial(self, conn: Any, trial_id: int, what: str, **values: Any) -> None:
        t = self._trials
        open_states = [TrialState.WAITING.value, TrialState.RUNNING.value, TrialState.PAUSED.value]
        n = conn.execute(
            t.update().where(t.c.id == trial_id, t.c.state.in_(open_states)).values(**values)
        ).rowcount
        if n == 0:
            self._raise_not_open(conn, trial_id, what)

    def _raise_not_open(self, conn: Any, trial_id: int, what: str) -> None:
        sa = self._sa
        t = self._trials
        row = conn.execute(sa.select(t.c.number, t.c.state).where(t.c.id == trial_id)).first()
        if row is None:
            raise TrialStateError(f"{what}: no trial with id {trial_id}.")
        raise TrialStateError(f"{what}: trial {row.number} is already {row.state}.")

    def set_trial_config(self, trial_id: int, config: dict[str, Any]) -> None:
        text = _dumps(config)
        self._run(
            "set_trial_config",
            lambda conn: self._update_open_trial(conn, trial_id, "set_trial_config", config=text),
        )

    def report(self, trial_id: int, step: int, value: float) -> None:
        sa = self._sa
        t, i = self._trials, self._inter
        open_states = [TrialState.RUNNING.value, TrialState.PAUSED.value]

        def fn(conn: Connection) -> None:
            conn.execute(i.delete().where(i.c.trial_id == trial_id, i.c.step == step))
            # Insert only while the trial is open: check and write in one statement.
            src = sa.select(
                sa.literal(trial_id, sa.Integer),
                sa.literal(step, sa.Integer),
                sa.literal(float(value), sa.Float(precision=53)),
            ).where(sa.exists().where(t.c.id == trial_id, t.c.state.in_(open_states)))
            n = conn.execute(i.insert().from_select(["trial_id", "step", "value"], src)).rowcount
            if n == 0:
                self._raise_not_open(conn, trial_id, "report")

        self._run("report", fn)

    def set_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        sa = self._sa
        t = self._trials
        _dumps(value)

        def fn(conn: Connection) -> None:
            row = conn.execute(sa.select(t.c.user_attrs).where(t.c.id == trial_id)).first()
            if row is None:
                raise TrialStateError(f"set_user_attr: no trial with id {trial_id}.")
            attrs = json.loads(row[0])
            attrs[key] = value
            self._update_open_trial(conn, trial_id, "set_user_attr", user_attrs=_dumps(attrs))

        self._run("set_user_attr", fn)

    def set_state(
        self,
        trial_id: int,
        state: TrialState,
        *,
        value: float | None = None,
        error: str | None = None,
        expected: Container[TrialState] | None = None,
    ) -> FrozenTrial:
        sa = self._sa
        t = self._trials
        sources = [s for s, allowed in TRANSITIONS.items() if state in allowed]
        if expected is not None:
            sources = [s for s in sources if s in expected]
        now = _to_db_time(utcnow())
        if value is not None and not math.isfinite(value):
            raise InvalidParameterError(f"set_state: value must be finite, got {value!r}.")

        def fn(conn: Connection) -> None:
            values: dict[str, Any] = {
                "state": state.value,
                "value": value,
                "error": error,
                "datetime_start": sa.func.coalesce(t.c.datetime_start, now),
                "datetime_complete": now if state.is_finished else None,
            }
            n = conn.execute(
                t.update()
                .where(t.c.id == trial_id, t.c.state.in_([s.value for s in sources]))
                .values(**values)
            ).rowcount
            if n == 0:
                row = conn.execute(
                    sa.select(t.c.number, t.c.state).where(t.c.id == trial_id)
                ).first()
                if row is None:
                    raise TrialStateError(f"No trial with id {trial_id}.")
                raise TrialStateError(
                    f"Trial {row.number} is {row.state}; it cannot become {state.value}."
                )

        self._run("set_state", fn)
        return self.get_trial(trial_id)

    def _records(self, conn: Any, where: Iterable[Any]) -> list[FrozenTrial]:
        sa = self._sa
        t, i = self._trials, self._inter
        rows = conn.execute(sa.select(t).where(*where).order_by(t.c.number)).all()
        if not rows:
            return []
        ids = [r.id for r in rows]
        inter: dict[int, dict[int, float]] = {tid: {} for tid in ids}
        q = sa.select(i.c.trial_id, i.c.step, i.c.value)
        if len(ids) <= 500:
            q = q.where(i.c.trial_id.in_(ids))
        else:
            q = q.where(i.c.trial_id.in_(sa.select(t.c.id).where(*where)))
        for tid, step, v in conn.execute(q.order_by(i.c.trial_id, i.c.step)):
            if tid in inter:
                inter[tid][int(step)] = float(v)
        return [
            FrozenTrial(
                number=int(r.number),
                state=TrialState(r.state),
                config=json.loads(r.config),
                value=None if r.value is None else float(r.value),
                intermediate=inter[r.id],
                user_attrs=json.loads(r.user_attrs),
                datetime_start=_from_db_time(r.datetime_start),
                datetime_complete=_from_db_time(r.datetime_complete),
                error=r.error,
                trial_id=int(r.id),
                worker=r.worker,
            )
            for r in rows
        ]

    def get_trial(self, trial_id: int) -> FrozenTrial:
        records = self._run(
            "get_trial", lambda conn: self._records(conn, [self._trials.c.id == trial_id])
        )
        if not records:
            raise TrialStateError(f"No trial with id {trial_id}.")
        return records[0]

    def get_trials(
        self, study_id: int, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        t = self._trials
        where = [t.c.study_id == study_id]
        if states is not None:
            where.append(t.c.state.in_([s.value for s in TrialState if s in states]))

        def fn(conn: Connection) -> list[FrozenTrial]:
            records = self._records(conn, where)
            if not records:
                exists = conn.execute(
                    self._sa.select(self._studies.c.id).where(self._studies.c.id == study_id)
                ).first()
                if exists is None:
                    raise StudyNotFoundError(f"No study with id {study_id}.")
            return records

        result: list[FrozenTrial] = self._run("get_trials", fn)
        return result


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _driver_url(url: str) -> str:
    """Pick an installed PostgreSQL driver for a plain ``postgresql://`` URL."""
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
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
