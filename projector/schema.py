"""The projection tables, their column order, indexes and the projection version.

Projection tables are never migrated: they are rebuilt from the journal. Bump
:data:`PROJECTION_VERSION` whenever a table shape or a normalisation rule changes; the next
``rsu project`` then rebuilds everything from seq 0 into ``*_new`` tables and swaps them in.

Column names follow the original Project88Hub tables where they exist. Units: money columns are
integer **cents**; ``*_utc`` columns are ISO 8601 UTC (``...Z``); the matching column without
``_utc`` is the wall-clock time as ISO 8601 with its UTC offset (Eastern for race and registration
times, the race's own zone for event times); ``last_modified`` of a registration is **epoch
seconds**; dates are ``YYYY-MM-DD``; flags are ``0``/``1``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

#: Bump to force a rebuild of every projection table from seq 0.
#: 2: ``sync_history.event_ids`` (listings of several events of a race in one call).
#: 3: values outside BIGINT are row errors; an event that cannot be projected is rolled back and
#: recorded (``projection_errors`` and ``sync_history``) instead of stopping the projector.
#: 4: one row per registration (event changes move it), race access lost, events removed
#: (issue 13).
#: 5: ``projector_pages`` records each page's body and events (issue 15, re-seen page shortcut).
#: 6: a races listing proves a race gone only with proof that it is complete (an empty page, or
#: one shorter than a page served before or than 50), as participant listings do.
#: 7: a race detail fetched with ``future_events_only=T`` removes no past event (nor one fetched
#: with ``most_recent_events_only``/``race_event_days_id`` any event).
#: 8: a race detail that answers error 7 again, with no detail read since the last one, is a
#: ``warning`` row of ``sync_history`` (the first denial stays an ``error``).
PROJECTION_VERSION = 8


@dataclass(frozen=True)
class Table:
    """One projection table: ``columns`` are ``(name, SQL type)`` in storage order."""

    name: str
    columns: tuple[tuple[str, str], ...]
    pk: tuple[str, ...]
    indexes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: Indexes among ``indexes`` only readers use (the projector's queries do not): created
    #: after a projection (:func:`create_indexes`), so a first projection of a large journal
    #: does not keep them up to date row by row (one sort at the end costs a third of that).
    lookup_only: tuple[str, ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.columns)

    def create_sql(self, suffix: str = "") -> str:
        cols = ",\n  ".join(f"{n} {t}" for n, t in self.columns)
        return (
            f"CREATE TABLE IF NOT EXISTS {self.name}{suffix} (\n  {cols},\n"
            f"  PRIMARY KEY ({', '.join(self.pk)})\n)"
        )


RACES = Table(
    "runsignup_races",
    (
        ("timing_partner_id", "INTEGER NOT NULL"),
        ("race_id", "INTEGER NOT NULL"),
        ("name", "TEXT"),
        ("next_date", "TEXT"),
        ("next_end_date", "TEXT"),
        ("last_date", "TEXT"),
        ("last_end_date", "TEXT"),
        ("is_draft_race", "INTEGER"),
        ("is_private_race", "INTEGER"),
        ("is_registration_open", "INTEGER"),
        ("can_use_registration_api", "INTEGER"),
        ("real_time_notifications_enabled", "INTEGER"),
        ("created", "TEXT"),
        ("created_utc", "TEXT"),
        ("last_modified", "TEXT"),
        ("last_modified_utc", "TEXT"),
        ("timezone", "TEXT"),
        ("description", "TEXT"),
        ("url", "TEXT"),
        ("external_race_url", "TEXT"),
        ("external_results_url", "TEXT"),
        ("fb_page_id", "TEXT"),
        ("fb_event_id", "TEXT"),
        ("logo_url", "TEXT"),
        ("street", "TEXT"),
        ("street2", "TEXT"),
        ("city", "TEXT"),
        ("state", "TEXT"),
        ("zipcode", "TEXT"),
        ("country_code", "TEXT"),
        ("source_seq", "INTEGER NOT NULL"),
        # UTC ``...Z`` since when the partner can no longer read the race (NULL: accessible)
        ("access_lost_at", "TEXT"),
        # missing_from_race_listing | permission_denied
        ("access_lost_reason", "TEXT"),
    ),
    ("timing_partner_id", "race_id"),
    (("name", ("timing_partner_id", "name")), ("next_date", ("timing_partner_id", "next_date"))),
)

EVENTS = Table(
    "runsignup_events",
    (
        ("timing_partner_id", "INTEGER NOT NULL"),
        ("race_id", "INTEGER NOT NULL"),
        ("event_id", "INTEGER NOT NULL"),
        ("race_event_days_id", "INTEGER"),
        ("name", "TEXT"),
        ("details", "TEXT"),
        ("start_time", "TEXT"),
        ("start_time_utc", "TEXT"),
        ("end_time", "TEXT"),
        ("end_time_utc", "TEXT"),
        ("registration_opens", "TEXT"),
        ("registration_opens_utc", "TEXT"),
        ("age_calc_base_date", "TEXT"),
        ("event_type", "TEXT"),
        ("distance", "TEXT"),
        ("volunteer", "INTEGER"),
        ("require_dob", "INTEGER"),
        ("require_phone", "INTEGER"),
        ("giveaway", "TEXT"),
        ("participant_cap", "INTEGER"),
        ("previous_year_event_id", "INTEGER"),
        ("sub_event_ids", "TEXT"),  # JSON array of ints
        ("registration_periods", "TEXT"),  # JSON array, fees in cents, see records.py
        ("source_seq", "INTEGER NOT NULL"),
        # UTC ``...Z`` of the race detail that no longer listed the event (NULL: listed)
        ("removed_at", "TEXT"),
    ),
    ("timing_partner_id", "race_id", "event_id"),
    (("event", ("timing_partner_id", "event_id")),),
)

PARTICIPANTS = Table(
    "runsignup_participants",
    (
        ("timing_partner_id", "INTEGER NOT NULL"),
        ("race_id", "INTEGER NOT NULL"),
        ("event_id", "INTEGER NOT NULL"),
        ("registration_id", "INTEGER NOT NULL"),
        ("user_id", "INTEGER"),
        ("first_name", "TEXT"),
        ("middle_name", "TEXT"),
        ("last_name", "TEXT"),
        ("email", "TEXT"),
        ("dob", "TEXT"),
        ("gender", "TEXT"),
        ("phone", "TEXT"),
        ("street", "TEXT"),
        ("city", "TEXT"),
        ("state", "TEXT"),
        ("zipcode", "TEXT"),
        ("country_code", "TEXT"),
        ("bib_num", "TEXT"),
        ("chip_num", "TEXT"),
        ("age", "INTEGER"),
        ("registration_date", "TEXT"),
        ("registration_date_utc", "TEXT"),
        ("last_modified", "INTEGER"),
        ("last_modified_utc", "TEXT"),
        ("rsu_transaction_id", "TEXT"),
        ("transaction_id", "TEXT"),
        ("imported", "INTEGER"),
        ("race_fee", "INTEGER"),
        ("offline_payment_amount", "INTEGER"),
        ("processing_fee", "INTEGER"),
        ("processing_fee_paid_by_user", "INTEGER"),
        ("processing_fee_paid_by_race", "INTEGER"),
        ("partner_fee", "INTEGER"),
        ("affiliate_profit", "INTEGER"),
        ("extra_fees", "INTEGER"),
        ("amount_paid", "INTEGER"),
        ("usatf_discount_amount_in_cents", "INTEGER"),
        ("usatf_discount_additional_field", "TEXT"),
        ("team_id", "INTEGER"),
        ("team_name", "TEXT"),
        ("team_type_id", "INTEGER"),
        ("team_type", "TEXT"),
        ("team_bib_num", "TEXT"),
        ("team_gender", "TEXT"),
        ("giveaway", "TEXT"),
        ("giveaway_option_id", "INTEGER"),
        ("question_responses", "TEXT"),  # JSON array as sent (response / responses[])
        ("removed_at", "TEXT"),
        ("removed_reason", "TEXT"),
        ("new_registration_id", "INTEGER"),
        ("source_seq", "INTEGER NOT NULL"),
        ("last_seen_seq", "INTEGER"),
        # the event the registration was in before its latest event change, and when (UTC)
        ("previous_event_id", "INTEGER"),
        ("event_changed_at", "TEXT"),
    ),
    # one row per registration: an event change moves it (``event_id`` is not part of the key)
    ("timing_partner_id", "race_id", "registration_id"),
    (
        ("event_seen", ("timing_partner_id", "race_id", "event_id", "last_seen_seq")),
        ("bib", ("timing_partner_id", "event_id", "bib_num")),
        ("name", ("timing_partner_id", "last_name", "first_name")),
        ("registration", ("timing_partner_id", "registration_id")),
    ),
    ("bib", "name", "registration"),
)

SYNC_HISTORY = Table(
    "sync_history",
    (
        ("sync_key", "TEXT NOT NULL"),
        ("timing_partner_id", "INTEGER"),
        ("race_id", "INTEGER"),
        ("event_id", "INTEGER"),
        ("sync_time", "TEXT NOT NULL"),
        ("num_of_synced_records", "INTEGER NOT NULL"),
        ("status", "TEXT NOT NULL"),
        ("reason", "TEXT"),
        ("entries_success", "INTEGER NOT NULL"),
        ("entries_failed", "INTEGER NOT NULL"),
        ("run_id", "TEXT"),
        ("endpoint", "TEXT NOT NULL"),
        ("listing_id", "TEXT"),
        ("mode", "TEXT"),
        ("complete", "INTEGER"),
        ("error_code", "INTEGER"),
        ("http_status", "INTEGER"),
        ("num_new", "INTEGER NOT NULL"),
        ("num_changed", "INTEGER NOT NULL"),
        ("num_unchanged", "INTEGER NOT NULL"),
        ("num_removed", "INTEGER NOT NULL"),
        ("pages", "INTEGER NOT NULL"),
        ("requests", "INTEGER NOT NULL"),
        ("retries", "INTEGER NOT NULL"),
        ("source_seq", "INTEGER NOT NULL"),
        ("event_ids", "TEXT"),
    ),
    ("sync_key",),
    (
        ("event", ("timing_partner_id", "event_id", "sync_time")),
        ("status", ("status", "sync_time")),
    ),
)

#: Every event change of a registration (the participants row holds only the latest one).
EVENT_CHANGES = Table(
    "runsignup_event_changes",
    (
        ("timing_partner_id", "INTEGER NOT NULL"),
        ("race_id", "INTEGER NOT NULL"),
        ("registration_id", "INTEGER NOT NULL"),
        ("from_event_id", "INTEGER NOT NULL"),
        ("to_event_id", "INTEGER NOT NULL"),
        ("changed_at", "TEXT NOT NULL"),  # UTC ``...Z``: when the projector saw the move
        ("source_seq", "INTEGER NOT NULL"),
    ),
    ("timing_partner_id", "race_id", "registration_id", "source_seq"),
    (("race", ("timing_partner_id", "race_id", "changed_at")),),
)

#: Pages of a partner's ``/Rest/races`` listing read so far in one run, kept only until the
#: listing's last (short) page proves it complete (see ``Applier._races_page``).
RACE_LISTING_PAGES = Table(
    "projector_race_listing_pages",
    (
        ("timing_partner_id", "INTEGER NOT NULL"),
        ("run_id", "TEXT NOT NULL"),
        ("listing_key", "TEXT NOT NULL"),  # the query without ``page``
        ("page", "INTEGER NOT NULL"),
        ("race_ids", "TEXT NOT NULL"),  # JSON array of ints
    ),
    ("timing_partner_id", "run_id", "listing_key", "page"),
)

#: One row per projected participants/removed-participants page (per-listing counts, failures).
PAGES = Table(
    "projector_pages",
    (
        ("seq", "INTEGER NOT NULL"),
        ("listing_id", "TEXT"),
        ("ok", "INTEGER NOT NULL"),
        ("rows", "INTEGER NOT NULL"),
        ("rows_failed", "INTEGER NOT NULL"),
        ("num_new", "INTEGER NOT NULL"),
        ("num_changed", "INTEGER NOT NULL"),
        ("num_unchanged", "INTEGER NOT NULL"),
        ("num_removed", "INTEGER NOT NULL"),
        ("reason", "TEXT"),
        # issue 15: which body this page was, and the events of the registrations it showed
        # (comma list; ``NULL`` for removed-participants pages), for the re-seen page shortcut
        ("timing_partner_id", "INTEGER"),
        ("race_id", "INTEGER"),
        ("body_sha256", "TEXT"),
        ("event_ids", "TEXT"),
    ),
    ("seq",),
    (("body", ("body_sha256",)),),
)

PROJECTION_ERRORS = Table(
    "projection_errors",
    (
        ("seq", "INTEGER NOT NULL"),
        ("item", "INTEGER NOT NULL"),  # -1: the whole body; else index of the row in the body
        ("kind", "TEXT NOT NULL"),
        ("endpoint", "TEXT"),
        ("timing_partner_id", "INTEGER"),
        ("reason", "TEXT NOT NULL"),
    ),
    ("seq", "item"),
)

#: Checkpoint and projection version (``name`` -> integer ``value``).
STATE = Table(
    "projector_state",
    (("name", "TEXT NOT NULL"), ("value", "INTEGER NOT NULL")),
    ("name",),
)

#: Every table rebuilt and swapped together.
TABLES: tuple[Table, ...] = (
    RACES,
    EVENTS,
    PARTICIPANTS,
    EVENT_CHANGES,
    SYNC_HISTORY,
    PAGES,
    RACE_LISTING_PAGES,
    PROJECTION_ERRORS,
    STATE,
)
#: Suffix of the tables a rebuild writes before the swap.
NEW_SUFFIX = "_new"


def create_tables(conn: sqlite3.Connection, suffix: str = "") -> None:
    """Create every projection table (``name + suffix``) if missing; no secondary indexes."""
    for table in TABLES:
        conn.execute(table.create_sql(suffix))


def create_indexes(conn: sqlite3.Connection, *, lookup: bool = True) -> None:
    """Create the look-up indexes (event, bib, name, ...) on the live tables if missing; without
    ``lookup``, only those the projector's own queries use (not ``Table.lookup_only``)."""
    for table in TABLES:
        for ix_name, cols in table.indexes:
            if not lookup and ix_name in table.lookup_only:
                continue
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS ix_{table.name}_{ix_name} "
                f"ON {table.name} ({', '.join(cols)})"
            )


def drop_tables(conn: sqlite3.Connection, suffix: str = "") -> None:
    """Drop every projection table ``name + suffix`` (with its indexes) if present."""
    for table in TABLES:
        conn.execute(f"DROP TABLE IF EXISTS {table.name}{suffix}")


def tables_exist(conn: sqlite3.Connection, suffix: str = "") -> bool:
    """Whether the checkpoint table ``projector_state + suffix`` exists."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (STATE.name + suffix,)
    ).fetchone()
    return row is not None
