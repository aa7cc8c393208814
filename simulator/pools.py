"""Name and address pools, built once per seed with Faker, then sampled with ``random.Random``.

Calling Faker per registration is far too slow for 100,000-row events, so generation draws from
these small prebuilt pools. The pools deliberately include accented, CJK, Korean and emoji names,
apostrophes and particles, and stray whitespace, because real RunSignUp data has all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from faker import Faker

_LOCALES = {
    "en_US": 50,
    "es_MX": 10,
    "fr_FR": 6,
    "de_DE": 6,
    "pt_BR": 5,
    "vi_VN": 4,
    "ja_JP": 3,
    "zh_CN": 3,
    "ko_KR": 3,
}

_SPECIAL_FIRST = [
    "Zoë",
    "José",
    "Siân",
    "Øystein",
    " Åsa",
    "Renée ",
    "Chloé",
    "🏃 Sam",
    "Ana-María",
]
_SPECIAL_LAST = ["O'Brien", "van der Berg", "Nguyễn", "Müller", "D'Angelo", "St. John", "López 🎉"]


@dataclass(frozen=True)
class Pools:
    """Prebuilt value pools (plain tuples of strings) sampled by the world generator."""

    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    streets: tuple[str, ...]
    cities: tuple[tuple[str, str, str], ...]  # (city, state, zipcode)
    race_words: tuple[str, ...]
    team_names: tuple[str, ...]


@lru_cache(maxsize=8)
def build_pools(seed: int, size: int = 120) -> Pools:
    """Build deterministic pools for ``seed`` (about 0.5 s, cached per seed)."""
    fake = Faker(list(_LOCALES))
    fake.seed_instance(seed)
    first: list[str] = []
    last: list[str] = []
    for loc, weight in _LOCALES.items():
        sub = fake[loc]
        n = max(4, size * weight // 50)
        first += [sub.first_name() for _ in range(n)]
        last += [sub.last_name() for _ in range(n)]
    first += _SPECIAL_FIRST
    last += _SPECIAL_LAST
    us = fake["en_US"]
    streets = tuple(us.street_address() for _ in range(size))
    cities = tuple((us.city(), us.state_abbr(), us.postcode()) for _ in range(size))
    words = tuple(sorted({us.word().title() for _ in range(size)}))
    teams = tuple(f"{us.last_name()} {us.word().title()} Runners" for _ in range(size // 2))
    return Pools(tuple(first), tuple(last), streets, cities, words, teams)
