"""The simulated RunSignUp world: partners, credentials, races, events and registrations.

Everything is generated deterministically from ``WorldConfig.seed``. Rows are stored as the exact
dicts the API serves (see :mod:`rsu.simulator.render` for the envelopes), so tests can compare
what a client stored with ``World.active_registrations`` / ``World.removed_registrations``.

Times: ``World.now`` and every ``last_modified`` are Unix seconds (UTC epoch). The world never
holds a ``last_modified`` later than ``now``.
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .formats import eastern_mdy_hm, flag, mdy_hm, money, race_date
from .oauth import TokenIssuer
from .pools import Pools, build_pools
from .wire import CallerRegistrationSpec

if TYPE_CHECKING:
    from .changes import Change

AUTH_KINDS = ("api_key", "rsu_api_key", "bearer")

TIMEZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Puerto_Rico",
)

CDN = "https://d368g9lw5ileu7.cloudfront.net/"

_EVENT_KINDS = (
    ("5K", "5K", "running_race"),
    ("10K", "10K", "running_race"),
    ("Half Marathon", "13.1 Miles", "running_race"),
    ("Marathon", "26.2 Miles", "running_race"),
    ("1 Mile Fun Run", "1 Mile", "running_race"),
    ("2 Mile Walk", "2 Miles", "walk"),
    ("Relay", "26.2 Miles", "relay"),
    ("24 hr", "24 Hours", "running_race"),
    ("Virtual 5K", "5K", "virtual_race"),
)

#: ``Race.timing_partner_id`` of a race whose partner lost access: a partner no credential has.
_NO_SIMULATED_PARTNER = -1
_SIZES = ("XS", "S", "M", "L", "XL")

_QUESTIONS = (
    ("Is this your first road race?", ("Yes", "No"), False),
    ("Emergency Contact Name", None, False),
    ("Emergency Contact Phone", None, False),
    ("Which events will you volunteer for?", ("Water stop", "Finish line", "Packet pickup"), True),
    ("How did you hear about us?", ("Friend", "Facebook", "Flyer", "RunSignUp"), False),
)


@dataclass(frozen=True)
class Credential:
    """One API credential of one timing partner.

    ``auth`` is how it goes on the wire:
    - ``"api_key"``: query params ``api_key=<principal>&api_secret=<secret>``;
    - ``"rsu_api_key"``: query param ``rsu_api_key=<principal>`` + header ``X-RSU-API-SECRET``;
    - ``"bearer"``: header ``Authorization: Bearer <secret>`` (``principal`` is ``""``).
    """

    timing_partner_id: int
    auth: str
    principal: str
    secret: str

    def query_params(self) -> dict[str, str]:
        """Query parameters to send with each request for this credential."""
        if self.auth == "api_key":
            return {"api_key": self.principal, "api_secret": self.secret}
        if self.auth == "rsu_api_key":
            return {"rsu_api_key": self.principal}
        return {}

    def headers(self) -> dict[str, str]:
        """HTTP headers to send with each request for this credential."""
        if self.auth == "rsu_api_key":
            return {"X-RSU-API-SECRET": self.secret}
        if self.auth == "bearer":
            return {"Authorization": f"Bearer {self.secret}"}
        return {}


@dataclass
class WorldConfig:
    """Knobs for :meth:`World.generate`. Ranges are inclusive ``(low, high)`` tuples.

    ``start_epoch`` is the initial simulator clock (Unix seconds, UTC); all generated
    registrations are older than it. ``public_races`` adds races linked to no partner: they show
    up in ``/Rest/races`` unless ``only_partner_races=T`` and their participants answer error 7.
    Fractions are probabilities per registration.
    """

    seed: int = 1
    partners: int = 3
    races_per_partner: int = 4
    events_per_race: tuple[int, int] = (1, 3)
    registrations_per_event: tuple[int, int] = (50, 400)
    start_epoch: int = 1767225600
    public_races: int = 0
    removed_fraction: float = 0.02
    missing_email_fraction: float = 0.05
    team_fraction: float = 0.12
    private_race_fraction: float = 0.1
    #: Lifetime of OAuth2 access tokens in simulated seconds (``None``: they never expire);
    #: see :mod:`rsu.simulator.oauth`.
    token_lifetime_s: int | None = None


@dataclass
class Event:
    """One event of a race. ``data`` is the event dict as served in ``race.events[]``.

    ``active`` maps registration_id -> participant dict (as served with ``include_questions=T``);
    ``removed`` maps registration_id -> removed-participant dict. ``version`` increments on every
    mutation and invalidates the caches used by the renderer.
    """

    event_id: int
    race_id: int
    data: dict[str, Any]
    active: dict[int, dict[str, Any]] = field(default_factory=dict)
    removed: dict[int, dict[str, Any]] = field(default_factory=dict)
    version: int = 0
    row_cache: dict[tuple[int, bool], bytes] = field(default_factory=dict)
    order_cache: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    encoded_cache: dict[tuple[str, int], list[bytes]] = field(default_factory=dict)
    bib_seq: int = 1
    bib_style: str = "int"
    race_fee_cents: int = 3500

    def touch(self, registration_id: int) -> None:
        """Mark one registration as changed (drops its cached JSON and the sort caches)."""
        self.version += 1
        self.row_cache.pop((registration_id, True), None)
        self.row_cache.pop((registration_id, False), None)
        self.order_cache.clear()


@dataclass
class Race:
    """One race. ``data`` is the race dict as served (without ``events``)."""

    race_id: int
    timing_partner_id: int | None
    data: dict[str, Any]
    events: dict[int, Event]
    next_date: dt.date
    questions: list[dict[str, Any]]
    headings: list[dict[str, str]]
    waiver: str


class World:
    """The whole simulated RunSignUp state, guarded by ``World.lock`` (an ``RLock``).

    Build it with :meth:`World.generate`; mutate it with :meth:`advance` (see
    :mod:`rsu.simulator.changes`) or :meth:`add_event`.
    """

    def __init__(self, config: WorldConfig, pools: Pools) -> None:
        self.config = config
        self.pools = pools
        self.rng = random.Random(config.seed)
        self.lock = threading.RLock()
        self.now: int = config.start_epoch
        #: OAuth2 access and refresh tokens (:mod:`rsu.simulator.oauth`).
        self.tokens = TokenIssuer(config.seed, config.token_lifetime_s)
        self.credentials: list[Credential] = []
        self.partner_ids: list[int] = []
        self.races: dict[int, Race] = {}
        self.events: dict[int, Event] = {}
        self._next_registration_id = 40_000_000 + self.rng.randrange(1_000_000)
        self._next_user_id = 10_000_000 + self.rng.randrange(1_000_000)
        self._next_event_id = 600_000 + self.rng.randrange(100_000)
        self._next_team_id = 90_000 + self.rng.randrange(10_000)
        self._next_txn = 8_000_000 + self.rng.randrange(1_000_000)
        #: The installation's API caller registration this world accepts (from the seed alone:
        #: it draws nothing from ``rng``, so the generated data does not depend on it).
        self.caller: CallerRegistrationSpec = caller_registration(config.seed)
        #: race_id -> the partner whose access :meth:`revoke_access` removed
        self.revoked: dict[int, int] = {}

    # ------------------------------------------------------------------ generation
    @classmethod
    def generate(cls, config: WorldConfig | None = None) -> World:
        """Generate a world from ``config`` (deterministic for a given config)."""
        config = config or WorldConfig()
        world = cls(config, build_pools(config.seed))
        rng = world.rng
        race_ids = rng.sample(range(10_000, 199_999), config.partners * config.races_per_partner)
        race_ids += rng.sample(range(200_000, 299_999), config.public_races)
        race_iter = iter(race_ids)
        for i in range(config.partners):
            pid = 100 + i * 7 + rng.randrange(7)
            world.partner_ids.append(pid)
            kind = AUTH_KINDS[i % len(AUTH_KINDS)]
            token = hashlib.sha256(f"{config.seed}:{pid}:{kind}".encode()).hexdigest()
            principal = "" if kind == "bearer" else token[:24]
            world.credentials.append(Credential(pid, kind, principal, token[24:56]))
            for _ in range(config.races_per_partner):
                world._make_race(next(race_iter), pid)
        for _ in range(config.public_races):
            world._make_race(next(race_iter), None)
        return world

    def _alloc_registration_id(self) -> int:
        self._next_registration_id += 1 + (self.rng.random() < 0.3)
        return self._next_registration_id

    def _make_race(self, race_id: int, partner_id: int | None) -> Race:
        rng, cfg, pools = self.rng, self.config, self.pools
        start = dt.datetime.fromtimestamp(cfg.start_epoch, dt.UTC)
        next_day = (start + dt.timedelta(days=rng.randint(20, 240))).date()
        last_day = next_day - dt.timedelta(days=364 - rng.randint(0, 3))
        brand_new = rng.random() < 0.15
        created = cfg.start_epoch - rng.randint(200, 3000) * 86400 - rng.randrange(86400)
        modified = cfg.start_epoch - rng.randint(1, 30) * 86400 - rng.randrange(86400)
        city, state, zipcode = rng.choice(pools.cities)
        words = rng.sample(pools.race_words, 2)
        name = f"{words[0]} {words[1]} {rng.choice(('5K', 'Run', 'Classic', 'Trot', 'Dash'))}"
        if rng.random() < 0.1:
            name = " " + name  # real names can carry a leading space
        elif rng.random() < 0.1:
            name = f'"{words[0]}" {words[1]} 5K'
        slug = name.strip().replace(" ", "").replace('"', "")
        address: dict[str, Any] = {
            "street": rng.choice(pools.streets),
            "street2": None,
            "city": city,
            "state": state,
            "zipcode": zipcode,
            "country_code": "US",
        }
        logo = rng.random()
        data: dict[str, Any] = {
            "race_id": race_id,
            "name": name,
            "last_date": None if brand_new else race_date(last_day),
            "last_end_date": None if brand_new else race_date(last_day),
            "next_date": race_date(next_day),
            "next_end_date": race_date(next_day),
            "is_draft_race": "F",
            "is_private_race": flag(rng.random() < cfg.private_race_fraction),
            "is_registration_open": flag(rng.random() < 0.85),
            "created": eastern_mdy_hm(created),
            "last_modified": eastern_mdy_hm(modified),
            "description": f"<p>Join us for the {name.strip()}!</p>\r\n<p>&nbsp;</p>",
            "url": f"https://runsignup.com/Race/{state}/{city.replace(' ', '')}/{slug}",
            "external_race_url": None if rng.random() < 0.6 else f"https://{slug.lower()}.org/",
            "external_results_url": None,
            "fb_page_id": None if rng.random() < 0.7 else slug[:20],
            "fb_event_id": None,
            "address": address,
            "timezone": rng.choice(TIMEZONES),
            "logo_url": None
            if logo < 0.3
            else CDN
            if logo < 0.5
            else f"{CDN}races/race{race_id}-logo.b{rng.randrange(10**6):06d}.png",
            "can_use_registration_api": flag(rng.random() < 0.5),
            "real_time_notifications_enabled": flag(rng.random() < 0.3),
        }
        questions = []
        for n, (text, _choices, _multi) in enumerate(_QUESTIONS[: rng.randint(0, len(_QUESTIONS))]):
            code = "C" if _multi else ("S" if _choices else "T")
            questions.append(
                {
                    "question_id": race_id * 10 + n + 1,
                    "question_text": text,
                    "question_type_code": code,
                    "required": flag(n == 0),
                }
            )
        race = Race(
            race_id=race_id,
            timing_partner_id=partner_id,
            data=data,
            events={},
            next_date=next_day,
            questions=questions,
            headings=[
                {"heading_text": "Parking", "content": f"<p>Park at {address['street']}</p>"}
            ],
            waiver=f"I know that running the {name.strip()} is a potentially hazardous activity.",
        )
        self.races[race_id] = race
        low, high = cfg.events_per_race
        for _ in range(rng.randint(low, high)):
            self.add_event(race_id, rng.randint(*cfg.registrations_per_event))
        return race

    def add_event(self, race_id: int, registrations: int = 6000) -> int:
        """Add an event with ``registrations`` active rows to ``race_id``; return its event_id.

        Imitates a race director adding an event; useful to build one big event for benchmarks.
        """
        with self.lock:
            rng, cfg = self.rng, self.config
            race = self.races[race_id]
            self._next_event_id += rng.randint(1, 40)
            event_id = self._next_event_id
            kind_name, distance, event_type = rng.choice(_EVENT_KINDS)
            hour, minute = rng.choice(((7, 0), (7, 30), (8, 0), (9, 0), (9, 10), (18, 0)))
            start = dt.datetime.combine(race.next_date, dt.time(hour, minute))
            end: dt.datetime | None = None
            if kind_name == "24 hr":
                end = start + dt.timedelta(hours=24)
            elif rng.random() < 0.4:
                end = start + dt.timedelta(hours=rng.randint(1, 7))
            opens = dt.datetime.fromtimestamp(cfg.start_epoch - 200 * 86400, dt.UTC)
            fee = rng.choice((2000, 2500, 3000, 3500, 4000, 5500, 8500, 11000))
            periods = []
            p_open = opens.replace(minute=0, second=0)
            for k in range(rng.randint(1, 3)):
                p_close = p_open + dt.timedelta(days=60) - dt.timedelta(minutes=1)
                periods.append(
                    {
                        "registration_opens": mdy_hm(p_open),
                        "registration_closes": mdy_hm(p_close),
                        "race_fee": money(fee + 500 * k),
                        "processing_fee": money(250 + fee // 20),
                    }
                )
                p_open = p_close + dt.timedelta(minutes=1)
            data: dict[str, Any] = {
                "event_id": event_id,
                "race_event_days_id": race_id * 3 + 7,
                "name": kind_name,
                "details": None if rng.random() < 0.7 else "subject to change",
                "start_time": mdy_hm(start),
                "end_time": None if end is None else mdy_hm(end),
                "age_calc_base_date": None,
                "registration_opens": mdy_hm(p_open if not periods else opens),
                "event_type": event_type,
                "distance": distance,
                "volunteer": "F",
                "require_dob": flag(rng.random() < 0.8),
                "require_phone": flag(rng.random() < 0.6),
                "registration_periods": periods,
                "sub_event_ids": [],
            }
            if rng.random() < 0.6:  # the key is sometimes missing altogether
                data["giveaway"] = rng.choice((None, "T-shirt", "Children's t-shirt option"))
            if rng.random() < 0.3:
                data["previous_year_event_id"] = event_id - rng.randint(1000, 90000)
            event = Event(event_id=event_id, race_id=race_id, data=data, race_fee_cents=fee)
            event.bib_seq = rng.choice((1, 1, 100, 1000))
            event.bib_style = rng.choice(("int", "int", "int", "zero", "alpha", "none"))
            race.events[event_id] = event
            self.events[event_id] = event
            gc_was_enabled = gc.isenabled()
            gc.disable()  # millions of fresh dicts: cyclic GC passes would double the time
            try:
                self._populate(event, race, registrations)
            finally:
                if gc_was_enabled:
                    gc.enable()
            return event_id

    def _populate(self, event: Event, race: Race, count: int) -> None:
        cfg, rng = self.config, self.rng
        newest = cfg.start_epoch - 60
        oldest = newest - 150 * 86400
        span, r = newest - oldest, rng.random
        times = sorted(oldest + int(r() * span) for _ in range(count))
        i = 0
        while i < count:
            if rng.random() < cfg.team_fraction and count - i >= 2:
                size = min(count - i, rng.randint(2, 6))
                relay = event.data["event_type"] == "relay" or rng.random() < 0.3
                team = self._new_team(event, relay)
                for k in range(size):
                    row = self.new_registration(event, race, times[i + k], team=team)
                    event.active[row["registration_id"]] = row
                i += size
            else:
                row = self.new_registration(event, race, times[i])
                event.active[row["registration_id"]] = row
                i += 1
        n_removed = int(count * cfg.removed_fraction)
        for reg_id in rng.sample(sorted(event.active), n_removed):
            row = event.active.pop(reg_id)
            when = min(newest, row["last_modified"] + rng.randint(60, 86400))
            reason = rng.choice(("cleared", "removed", "deferred"))
            event.removed[reg_id] = removed_row(row, reason, None, when)
        event.version += 1

    def _new_team(self, event: Event, relay: bool) -> dict[str, Any]:
        self._next_team_id += 1
        bib = self.next_bib(event) if relay else None
        return {
            "team_id": self._next_team_id,
            "team_name": self.rng.choice(self.pools.team_names),
            "team_type_id": 2 if relay else 1,
            "team_type": "Relay" if relay else "Club",
            "team_gender": self.rng.choice(("M", "F", "X")),
            "team_bib_num": bib if isinstance(bib, int) else None,
            "relay_bib": bib,
        }

    def next_bib(self, event: Event) -> int | str | None:
        """Assign the next bib in the event's style: int, ``"0042"``, ``"A42"`` or ``None``."""
        r = self.rng.random()
        if r < (0.8 if event.bib_style == "none" else 0.02):
            return None  # not assigned yet
        n = event.bib_seq
        event.bib_seq += 1
        if event.bib_style == "zero" or r < 0.03:
            return f"{n:04d}"
        if event.bib_style == "alpha" or r < 0.06:
            return f"{'ABCK'[n % 4]}{n}"
        return n

    def new_registration(
        self,
        event: Event,
        race: Race,
        when: int,
        team: dict[str, Any] | None = None,
        registration_id: int | None = None,
    ) -> dict[str, Any]:
        """Build one participant dict (exact served shape) registered at ``when`` (Unix s)."""
        r = self.rng.random
        pools, cfg = self.pools, self.config
        reg_id = registration_id or self._alloc_registration_id()
        self._next_user_id += 1
        uid = self._next_user_id
        firsts, lasts = pools.first_names, pools.last_names
        race_day = race.next_date
        year = race_day.year - 8 - int(r() * 73)
        month, day = 1 + int(r() * 12), 1 + int(r() * 28)
        age = race_day.year - year - ((race_day.month, race_day.day) < (month, day))
        city, state, zipcode = pools.cities[int(r() * len(pools.cities))]
        user: dict[str, Any] = {
            "user_id": uid,
            "first_name": firsts[int(r() * len(firsts))],
            "middle_name": None if r() < 0.9 else "J.",
            "last_name": lasts[int(r() * len(lasts))],
        }
        x = r()
        if x >= cfg.missing_email_fraction:  # the key is missing without permission
            user["email"] = f"runner{uid}@example.com" if x > 0.1 else None
        user["address"] = {
            "street": pools.streets[int(r() * len(pools.streets))],
            "city": city,
            "state": state,
            "zipcode": zipcode,
            "country_code": "US",
        }
        user["dob"] = f"{year}-{month:02d}-{day:02d}"
        g = r()
        if g < 0.97:
            user["gender"] = "M" if g < 0.47 else "F" if g < 0.94 else "X" if g < 0.955 else None
        if r() < 0.9:
            user["phone"] = f"555-{int(r() * 1000):03d}-{int(r() * 10000):04d}"
        user["profile_image_url"] = None
        fee = event.race_fee_cents
        proc = 250 + fee // 20
        extra = 0 if r() < 0.8 else 500
        imported = r() < 0.03
        self._next_txn += 1
        txn = self._next_txn
        bib = team["relay_bib"] if team and team["relay_bib"] is not None else self.next_bib(event)
        giveaway = None if r() < 0.4 else _SIZES[int(r() * 5)]
        row: dict[str, Any] = {
            "registration_id": reg_id,
            "event_id": event.event_id,
            "user": user,
            "rsu_transaction_id": None if imported else txn,
            "transaction_id": None if imported else f"ay_{txn:012d}C_0",
            "bib_num": bib,
            "chip_num": None if r() < 0.7 else f"{int(r() * 16**8):08X}",
            "age": None if r() < 0.02 else age,
            "registration_date": eastern_mdy_hm(when),
            "team_id": team["team_id"] if team else None,
            "team_name": team["team_name"] if team else None,
            "team_type_id": team["team_type_id"] if team else None,
            "team_type": team["team_type"] if team else None,
            "team_gender": team["team_gender"] if team else None,
            "team_bib_num": team["team_bib_num"] if team else None,
            "last_modified": when,
            "imported": "T" if imported else "F",
            "race_fee": money(fee),
            "offline_payment_amount": money(fee if imported else 0),
            "processing_fee": money(proc),
            "processing_fee_paid_by_user": money(proc),
            "processing_fee_paid_by_race": "$0.00",
            "partner_fee": "$0.75",
            "affiliate_profit": "$0.00",
            "extra_fees": money(extra),
            "amount_paid": money(0 if imported else fee + proc + extra),
            "usatf_discount_amount_in_cents": "$0.00",
            "usatf_discount_additional_field": None,
            "giveaway": giveaway,
            "giveaway_option_id": None if giveaway is None else 500 + _SIZES.index(giveaway),
            "question_responses": self._responses(race),
        }
        return row

    def _responses(self, race: Race) -> list[dict[str, Any]]:
        r = self.rng.random
        out = []
        for q in race.questions:
            text, choices, multi = _QUESTIONS[q["question_id"] % 10 - 1]
            item: dict[str, Any] = {"question_id": str(q["question_id"]), "question_text": text}
            if multi and choices:  # multi-select questions answer with responses[]
                item["responses"] = [c for c in choices if r() < 0.4]
            elif choices:
                item["response"] = choices[int(r() * len(choices))]
            elif r() < 0.2:
                item["response"] = None
            elif "Phone" in text:
                item["response"] = f"555-{int(r() * 1000):03d}-{int(r() * 10000):04d}"
            else:
                names = self.pools.first_names
                item["response"] = names[int(r() * len(names))]
            out.append(item)
        return out

    # ------------------------------------------------------------------ queries
    def race_ids(self, timing_partner_id: int) -> list[int]:
        """Race IDs linked to one timing partner, in generation order."""
        with self.lock:
            return [
                r.race_id for r in self.races.values() if r.timing_partner_id == timing_partner_id
            ]

    def event_ids(self, race_id: int) -> list[int]:
        """Event IDs of one race, in the order ``/Rest/race/{race_id}`` lists them."""
        with self.lock:
            return list(self.races[race_id].events)

    def active_registrations(self, race_id: int, event_id: int) -> dict[int, dict[str, Any]]:
        """registration_id -> participant dict as served with include_questions, supports_nb."""
        with self.lock:
            event = self._event(race_id, event_id)
            return {k: _deep_copy(v) for k, v in event.active.items()}

    def removed_registrations(self, race_id: int, event_id: int) -> dict[int, dict[str, Any]]:
        """registration_id -> row as ``/removed-participants`` serves it."""
        with self.lock:
            event = self._event(race_id, event_id)
            return {k: _deep_copy(v) for k, v in event.removed.items()}

    def _event(self, race_id: int, event_id: int) -> Event:
        event = self.races[race_id].events.get(event_id)
        if event is None:
            raise KeyError(f"event {event_id} is not in race {race_id}")
        return event

    def credential_for(self, timing_partner_id: int) -> Credential:
        """The credential of one partner."""
        return next(c for c in self.credentials if c.timing_partner_id == timing_partner_id)

    def advance(
        self,
        new: int = 10,
        edits: int = 5,
        refunds: int = 1,
        transfers: int = 1,
        deferrals: int = 1,
        seconds: int = 600,
        race_ids: Sequence[int] | None = None,
        event_changes: int = 0,
    ) -> list[Change]:
        """Move the clock ``seconds`` forward and apply changes; returns ``list[Change]``.

        See :func:`rsu.simulator.changes.advance` for the exact semantics.
        """
        from .changes import advance

        return advance(
            self, new, edits, refunds, transfers, deferrals, seconds, race_ids, event_changes
        )

    # ------------------------------------------------------------------ access and events
    def revoke_access(self, race_id: int) -> None:
        """The race director removes the timing partner's access to ``race_id``: the race leaves
        the partner's ``/Rest/races?only_partner_races=T`` list and ``/Rest/race/{id}`` (and its
        participant listings) answer error 7 for the partner. Undo with :meth:`restore_access`."""
        with self.lock:
            race = self.races[race_id]
            if race_id not in self.revoked and race.timing_partner_id is not None:
                self.revoked[race_id] = race.timing_partner_id
                race.timing_partner_id = _NO_SIMULATED_PARTNER

    def restore_access(self, race_id: int) -> None:
        """Give the partner its access to ``race_id`` back (see :meth:`revoke_access`)."""
        with self.lock:
            partner = self.revoked.pop(race_id, None)
            if partner is not None:
                self.races[race_id].timing_partner_id = partner

    def remove_event(self, race_id: int, event_id: int, move_to: int | None = None) -> list[int]:
        """Delete an event from a race: ``/Rest/race/{id}`` no longer lists it. With
        ``move_to`` its active registrations move to that event of the race keeping their
        registration_id (``last_modified`` becomes ``now``); else they vanish with it. Returns
        the registration ids that were active in the event."""
        with self.lock:
            race = self.races[race_id]
            event = race.events.pop(event_id)
            del self.events[event_id]
            moved = list(event.active)
            if move_to is not None:
                target = race.events[move_to]
                for reg_id, row in event.active.items():
                    row["event_id"] = move_to
                    row["last_modified"] = self.now
                    target.active[reg_id] = row
                    target.touch(reg_id)
            return moved


def caller_registration(seed: int) -> CallerRegistrationSpec:
    """The deterministic API caller registration of a world with ``seed``: a numeric
    ``reg_id``, a 32-hex-digit ``token`` and a 40-hex-digit ``secret`` (fake by construction)."""
    digest = hashlib.sha256(f"{seed}:api-caller-registration".encode()).hexdigest()
    reg_id = str(1000 + int(digest[:8], 16) % 9000)
    secret = hashlib.sha256(f"{seed}:api-caller-secret".encode()).hexdigest()[:40]
    return CallerRegistrationSpec(reg_id, digest[8:40], secret)


def removed_row(row: dict[str, Any], reason: str, new_id: int | None, when: int) -> dict[str, Any]:
    """Build a ``/removed-participants`` row from an active participant dict.

    ``registration_date``/``last_modified`` are ``"YYYY-MM-DD HH:MM:SS"`` Eastern strings,
    ``last_modified_ts`` is Unix seconds; ``removed_reason`` is cleared, removed, transferred
    or deferred.
    """
    from .formats import eastern_iso

    user = row["user"]
    out_user = {
        k: user[k] for k in ("user_id", "first_name", "middle_name", "last_name") if k in user
    }
    for k in ("email", "dob", "gender"):
        if k in user:
            out_user[k] = user[k]
    reg_epoch = _parse_eastern_mdy_hm(row["registration_date"])
    return {
        "registration_id": row["registration_id"],
        "event_id": row["event_id"],
        "user": out_user,
        "bib_num": row["bib_num"],
        "chip_num": row["chip_num"],
        "registration_date": eastern_iso(reg_epoch),
        "last_modified": eastern_iso(when),
        "last_modified_ts": when,
        "removed_reason": reason,
        "new_registration_id": new_id,
    }


def _parse_eastern_mdy_hm(text: str) -> int:
    from .formats import EASTERN

    d = dt.datetime.strptime(text, "%m/%d/%Y %H:%M").replace(tzinfo=EASTERN)
    return int(d.timestamp())


def _deep_copy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _deep_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deep_copy(v) for v in obj]
    return obj
