"""The PostgreSQL projection target (``rsu project --target postgresql://...``), psycopg 3.

The same :class:`~rsu.projector.apply.Applier` writes the same tables and columns as into SQLite,
through :class:`PgConnection`, a thin adapter: ``?`` placeholders become ``%s``; a large
``executemany`` of an upsert or a one-column update goes through COPY into a temporary staging
table and one ``INSERT ... ON CONFLICT`` / ``UPDATE ... FROM``, a small one runs in psycopg's
pipeline mode (one network round trip per batch, not per row). Only the DDL
differs (:func:`create_sql`): ``INTEGER`` -> ``BIGINT``, ``TEXT`` stays, the JSON columns are
``JSONB``. The checkpoint lives in the target's own ``projector_state`` table, written in the same
PostgreSQL transaction as each batch, so every target following one journal has its own.

A DSN holds a password: it never goes into a message, a log or the journal as given; use
:func:`mask_dsn` for anything shown to an operator.
"""

from __future__ import annotations

import contextlib
import re
import zlib
from typing import Any

import msgspec
import psycopg
from psycopg.adapt import Loader

from .apply import DATABASE_ERRORS, _upsert_sql
from .dsn import dsn_passwords, dsn_problem, mask_dsn
from .schema import NEW_SUFFIX, TABLES, Table, create_indexes, drop_tables
from .target import TargetError

# A PostgreSQL failure (connection lost, disk full, read-only, a timeout) stops the run like a
# SQLite one; only a value PostgreSQL refuses is the event's fault.
DATABASE_ERRORS.append((psycopg.Error, (psycopg.DataError, psycopg.IntegrityError)))

#: Columns holding JSON text in SQLite, ``JSONB`` in PostgreSQL.
JSON_COLUMNS = frozenset({"sub_event_ids", "registration_periods", "question_responses"})
_PLACEHOLDER = re.compile(r"\?")


def _pg_type(name: str, sql_type: str) -> str:
    base, _, rest = sql_type.partition(" ")
    if name in JSON_COLUMNS:
        base = "JSONB"
    elif base == "INTEGER":
        base = "BIGINT"
    return f"{base} {rest}".strip()


def create_sql(table: Table, suffix: str = "") -> str:
    """``CREATE TABLE IF NOT EXISTS`` of ``table + suffix`` in PostgreSQL types, its primary key
    named ``<table><suffix>_pkey``."""
    cols = ",\n  ".join(f"{n} {_pg_type(n, t)}" for n, t in table.columns)
    return (
        f"CREATE TABLE IF NOT EXISTS {table.name}{suffix} (\n  {cols},\n"
        f"  CONSTRAINT {table.name}{suffix}_pkey PRIMARY KEY ({', '.join(table.pk)})\n)"
    )


class JsonText(str):
    """A ``JSONB`` value read back as JSON text. PostgreSQL stores JSONB normalised (keys
    reordered, spaces added), so equality is by JSON value: the Applier's "unchanged?" check
    then compares what the row means, as it does on SQLite's verbatim text."""

    def _value(self) -> Any:
        return msgspec.json.decode(self.encode())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, str):
            return NotImplemented
        try:
            return bool(self._value() == msgspec.json.decode(other.encode()))
        except msgspec.DecodeError:
            return False

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(msgspec.json.encode(self._value(), order="sorted"))


class _JsonTextLoader(Loader):
    def load(self, data: Any) -> JsonText:
        return JsonText(bytes(data).decode())


def _nul_safe(value: Any) -> Any:
    """PostgreSQL text and JSONB cannot hold U+0000: it becomes U+FFFD (SQLite keeps it), so an
    untrusted body can never stop the projection. Other values pass unchanged."""
    if value.__class__ is str and ("\x00" in value or "\\u0000" in value):
        return value.replace("\x00", "\ufffd").replace("\\u0000", "\\ufffd")
    return value


#: Rows a session writes into a table before its first ``ANALYZE`` (see ``_maybe_analyze``).
ANALYZE_MIN_ROWS = 10_000
#: ``executemany`` of at least this many rows of an upsert or update by key goes through COPY.
COPY_MIN_ROWS = 100
#: ``UPDATE t SET c = ? WHERE k1 = ? AND k2 = ? ...``: one column set by a key (last_seen_seq).
_UPDATE_BY_KEY = re.compile(r"UPDATE (\w+) SET (\w+) = \? WHERE (\w+ = \?(?: AND \w+ = \?)*)")
_KEY_COLUMN = re.compile(r"(\w+) = \?")


class PgConnection:
    """Runs the Applier's ``?``-style SQL on a psycopg connection (autocommit; transactions are
    opened by :class:`PgTarget`).

    ``executemany`` of the Applier's upserts (:func:`rsu.projector.apply._upsert_sql`) with many
    rows COPYs them into a temporary staging table, then runs one ``INSERT ... SELECT ... ON
    CONFLICT DO UPDATE``; an update of one column by key (``last_seen_seq`` of unchanged rows)
    likewise runs as one ``UPDATE ... FROM``; any other ``executemany`` runs in pipeline mode.
    """

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn
        self._sql: dict[str, str] = {}
        #: table -> (rows written since its last ANALYZE, rows it had then), this session
        self._analyze: dict[str, tuple[int, int]] = {}
        self._upserts: dict[str, tuple[Table, str]] = {
            _upsert_sql(table, suffix): (table, suffix)
            for table in TABLES
            for suffix in ("", NEW_SUFFIX)
        }

    def _translate(self, sql: str) -> str:
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = _PLACEHOLDER.sub("%s", sql.replace("%", "%%"))
        return out

    def execute(self, sql: str, params: Any = ()) -> psycopg.Cursor[Any]:
        """Execute one statement; the cursor has ``fetchone()``, iteration and ``rowcount``."""
        if not params:
            return self.raw.execute(sql.encode())
        return self.raw.execute(
            self._translate(sql),  # type: ignore[arg-type]
            tuple(_nul_safe(v) for v in params),
        )

    def executemany(self, sql: str, rows: Any) -> None:
        """Execute ``sql`` for every parameter tuple in ``rows`` (staged COPY or pipelined),
        inside the caller's transaction. A batch PostgreSQL refuses as data (a NUL) is redone
        from a savepoint with :func:`_nul_safe` values: no per-value check on the fast path."""
        batch = rows if isinstance(rows, list) else list(rows)
        raw = self.raw
        raw.execute(b"SAVEPOINT rsu_batch")
        try:
            self._many(sql, batch)
        except psycopg.DataError:
            raw.execute(b"ROLLBACK TO SAVEPOINT rsu_batch")
            self._many(sql, [tuple(_nul_safe(v) for v in row) for row in batch])
        raw.execute(b"RELEASE SAVEPOINT rsu_batch")

    def _many(self, sql: str, batch: list[tuple[Any, ...]]) -> None:
        if len(batch) >= COPY_MIN_ROWS:
            upsert = self._upserts.get(sql)
            if upsert is not None:
                self._copy_upsert(upsert[0], upsert[1], batch)
                return
            update = _UPDATE_BY_KEY.fullmatch(sql)
            if update is not None:
                self._copy_update(update[1], update[2], _KEY_COLUMN.findall(update[3]), batch)
                return
        with self.raw.cursor() as cur:
            cur.executemany(self._translate(sql), batch)  # type: ignore[arg-type]

    def _copy_upsert(self, table: Table, suffix: str, rows: list[tuple[Any, ...]]) -> None:
        cols = ", ".join(table.column_names)
        stage = f"rsu_stage_{table.name}"
        updates = ", ".join(f"{c} = excluded.{c}" for c in table.column_names if c not in table.pk)
        pk_ix = [table.column_names.index(c) for c in table.pk]
        # executemany semantics: the last row of a key wins (one INSERT may touch a row once)
        unique = {tuple(row[i] for i in pk_ix): row for row in rows}
        raw = self.raw
        raw.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table.name}{suffix}) "
            "ON COMMIT DELETE ROWS".encode()
        )
        with raw.cursor() as cur, cur.copy(f"COPY {stage} ({cols}) FROM STDIN".encode()) as copy:
            for row in unique.values():
                copy.write_row(row)
        raw.execute(
            f"INSERT INTO {table.name}{suffix} ({cols}) SELECT {cols} FROM {stage} "
            f"ON CONFLICT ({', '.join(table.pk)}) DO UPDATE SET {updates}".encode()
        )
        raw.execute(f"TRUNCATE {stage}".encode())
        self._maybe_analyze(f"{table.name}{suffix}", len(unique))

    def _maybe_analyze(self, table: str, written: int) -> None:
        """``ANALYZE`` a table each time this session has written as many rows into it as it had
        at its last analysis (at least :data:`ANALYZE_MIN_ROWS`). A big first projection runs in
        few transactions that autovacuum cannot see into: without statistics the planner answers
        each page's existence query by scanning an event's rows (5x slower at 50,000 rows).
        ``ANALYZE`` counts this transaction's own rows and blocks no reader."""
        since, at = self._analyze.get(table, (0, 0))
        since += written
        if since >= max(ANALYZE_MIN_ROWS, at):
            self.raw.execute(f"ANALYZE {table}".encode())
            since, at = 0, at + since
        self._analyze[table] = (since, at)

    def _copy_update(
        self, table: str, column: str, keys: list[str], rows: list[tuple[Any, ...]]
    ) -> None:
        """``UPDATE table SET column = ? WHERE key1 = ? AND ...`` for many rows: COPY the rows
        into a staging table, then one ``UPDATE ... FROM`` (the last row of a key wins)."""
        stage = f"rsu_stage_{zlib.crc32(f'{table}:{column}:{keys}'.encode()):08x}"
        unique = {row[1:]: row for row in rows}
        raw = self.raw
        raw.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS AS "
            f"SELECT {column} AS rsu_value, {', '.join(keys)} FROM {table} WITH NO DATA".encode()
        )
        copy_sql = f"COPY {stage} (rsu_value, {', '.join(keys)}) FROM STDIN"
        with raw.cursor() as cur, cur.copy(copy_sql.encode()) as copy:
            for row in unique.values():
                copy.write_row(row)
        match = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        raw.execute(
            f"UPDATE {table} AS t SET {column} = s.rsu_value FROM {stage} AS s "
            f"WHERE {match}".encode()
        )
        raw.execute(f"TRUNCATE {stage}".encode())


class PgTarget:
    """The projection tables in a PostgreSQL database (schema from the DSN's ``search_path``).

    Raises :class:`TargetError` (with the DSN masked) when the server cannot be reached.
    """

    def __init__(self, dsn: str) -> None:
        self.label = mask_dsn(dsn)
        self._dsn = dsn
        # libpq's parse errors quote the text they could not parse, which may be part of the
        # password: a malformed DSN is described by dsn_problem, never by libpq.
        try:
            psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.Error:
            problem = dsn_problem(dsn) or "libpq cannot parse it"
            if self.label.startswith("<malformed"):  # the label says what is wrong
                raise TargetError(f"cannot connect to {self.label}") from None
            kind = "URL" if "://" in dsn else "DSN"
            raise TargetError(
                f"cannot connect to {self.label}: malformed {kind}: {problem}"
            ) from None
        try:
            raw = psycopg.connect(
                dsn, autocommit=True, connect_timeout=15, application_name="rsu projector"
            )
        except psycopg.Error as exc:
            raise TargetError(f"cannot connect to {self.label}: {scrub(exc, dsn)}") from None
        raw.adapters.register_loader("jsonb", _JsonTextLoader)
        # A generic plan, made while a table is still small and never analysed, would scan the
        # whole table for each page's existence query; a plan per execution uses the index.
        raw.execute(b"SET plan_cache_mode = force_custom_plan")
        self._pg = PgConnection(raw)

    @property
    def conn(self) -> PgConnection:
        return self._pg

    def begin(self) -> None:
        # One projector per target at a time: an advisory lock per schema, held to COMMIT.
        self._pg.raw.execute("BEGIN")
        self._pg.raw.execute(
            "SELECT pg_advisory_xact_lock(hashtext('rsu projector ' || current_schema()))"
        )

    def commit(self) -> None:
        self._pg.raw.execute("COMMIT")

    def rollback(self) -> None:
        status = self._pg.raw.info.transaction_status
        if status != psycopg.pq.TransactionStatus.IDLE and not self._pg.raw.closed:
            self._pg.raw.execute("ROLLBACK")

    def create_tables(self, suffix: str = "") -> None:
        for table in TABLES:
            self._pg.raw.execute(create_sql(table, suffix).encode())

    def create_indexes(self, *, lookup: bool = True) -> None:
        create_indexes(self._pg, lookup=lookup)  # type: ignore[arg-type]

    def drop_tables(self, suffix: str = "") -> None:
        drop_tables(self._pg, suffix)  # type: ignore[arg-type]

    def tables_exist(self, suffix: str = "") -> bool:
        row = self._pg.raw.execute(
            "SELECT to_regclass(%s) IS NOT NULL", ("projector_state" + suffix,)
        ).fetchone()
        return bool(row and row[0])

    def swap_session(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    def swap_in_new(self) -> list[str]:
        raw = self._pg.raw
        for table in TABLES:
            raw.execute(f"DROP TABLE IF EXISTS {table.name}".encode())
        for table in TABLES:
            live, new = table.name, f"{table.name}{NEW_SUFFIX}"
            raw.execute(f"ALTER TABLE {new} RENAME TO {live}".encode())
            raw.execute(f"ALTER TABLE {live} RENAME CONSTRAINT {new}_pkey TO {live}_pkey".encode())
        self.create_indexes()
        return []

    def probe(self, sql: str) -> tuple[Any, ...] | None:
        raw = self._pg.raw
        raw.execute("SAVEPOINT rsu_probe")
        try:
            row = self._pg.execute(sql).fetchone()
        except (psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedTable):
            raw.execute("ROLLBACK TO SAVEPOINT rsu_probe")
            return None
        raw.execute("RELEASE SAVEPOINT rsu_probe")
        return None if row is None else tuple(row)

    def wrap_error(self, exc: BaseException) -> TargetError | None:
        if isinstance(exc, psycopg.Error):
            return TargetError(f"PostgreSQL target {self.label}: {scrub(exc, self._dsn)}")
        return None

    def close(self) -> None:
        self._pg.raw.close()


#: A password at least this long is masked wherever it appears in a message; a shorter one
#: only where it stands as a password (:func:`_mask_fields`): masking every ``a`` of a message
#: for the password ``a`` hides the message and tells the reader the password.
MIN_BARE_MASK = 4


def scrub(exc: BaseException, dsn: str) -> str:
    """The text of ``exc`` without the DSN or its password, on one line: the DSN is shown masked
    (:func:`rsu.projector.dsn.mask_dsn`); a password of :data:`MIN_BARE_MASK` or more
    characters becomes ``***`` wherever it appears, a shorter one where it stands as a password
    (:func:`_mask_fields`)."""
    text = " ".join(str(exc).split())
    passwords = set(dsn_passwords(dsn))  # as written too: libpq quotes a value it cannot parse
    try:
        password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        password = None
    if password:
        passwords.add(str(password))
    if dsn:
        text = text.replace(dsn, mask_dsn(dsn))
    for value in sorted(passwords, key=len, reverse=True):
        text = (
            text.replace(value, "***") if len(value) >= MIN_BARE_MASK else _mask_fields(text, value)
        )
    return text


def _mask_fields(text: str, password: str) -> str:
    """``text`` with ``password`` replaced by ``***`` where it stands as a password: a URL's
    user info (``:pw@``), a ``password=pw`` or ``password='pw'`` field (``sslpassword`` too),
    and a quoted whole (``"pw"``, as libpq quotes a value it cannot parse)."""
    pw = re.escape(password)
    text = re.sub(f"(:){pw}(@)", r"\1***\2", text)
    text = re.sub(f"(password\\s*=\\s*'?){pw}(?=$|[\\s'\",;&)])", r"\1***", text, flags=re.I)
    return re.sub(f"([\"']){pw}(?=\\1)", r"\1***", text)
