"""Blob codecs of ``journal_blobs``: how a raw response body is stored, and read back.

Codecs (the ``journal_blobs.codec`` column):

* ``zlib`` -- zlib level 1, the codec of every blob written before zstd (still read, and written
  when a :class:`~rsu.journal.store.Journal` is opened with ``blob_codec="zlib"``);
* ``identity`` -- the body as is (when compression would not make it smaller);
* ``zstd`` -- one zstd frame (level :data:`ZSTD_LEVEL`) of the whole body;
* ``zstd-delta`` -- one zstd frame compressed with an earlier raw body of the same listing as a
  raw-content dictionary; ``journal_blobs.base_sha256`` names that earlier body's blob.

Chain bound: decoding any blob follows at most :data:`MAX_CHAIN` = 2 base links, i.e. reads at
most 3 blobs. A delta's base is either a blob stored *whole* (``zlib``, ``identity`` or
``zstd``: a level-1 delta) or a level-1 delta of that same whole blob (a level-2 delta). Which
one :mod:`rsu.journal.blobs` picks: a delta against the whole blob is kept only while it is at
most :data:`DELTA_MAX_FRACTION` of what the body costs stored whole (estimated from the whole
blob's stored size), otherwise the body is stored whole and becomes the next base of its
listing; a level-2 delta is taken instead when it is at most half the level-1 delta, so daily
re-listings cost about one day's changes, and a level-1 delta now and then (when the changes
since the last one have piled up) keeps the level-2 deltas small.

Measured on simulator pages (3.4 MB of participants JSON, ``benchmarks/journal_storage.py``):
zstd level 3 is both smaller (~0.56x) and faster (~0.4x the CPU) than zlib level 1, so whole
bodies use zstd; a page re-listed a day later with ~1% of its rows changed costs ~2.4 KB as a
delta against ~215 KB whole.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import zstandard

from .db import JournalError

ZLIB = "zlib"
IDENTITY = "identity"
ZSTD = "zstd"
ZSTD_DELTA = "zstd-delta"
#: Codecs whose blob decodes on its own (a delta's base is always one of these).
WHOLE_CODECS = frozenset({ZLIB, IDENTITY, ZSTD})
#: Every codec this version reads.
CODECS = WHOLE_CODECS | {ZSTD_DELTA}
#: Codecs a journal may be told to write new whole blobs with.
WRITE_CODECS = frozenset({ZLIB, ZSTD})

#: zlib level of ``zlib`` blobs.
ZLIB_LEVEL = 1
#: zstd level of ``zstd`` and ``zstd-delta`` blobs.
ZSTD_LEVEL = 3
#: Most base links followed to decode a blob (a level-2 delta -> a level-1 delta -> whole).
MAX_CHAIN = 2
#: A delta is stored only while it is at most this fraction of the body stored whole.
DELTA_MAX_FRACTION = 0.2
#: Bodies smaller than this many bytes are always stored whole (a delta gains nothing).
DELTA_MIN_BODY = 4096
#: A delta's base and body together must fit in 2**this bytes (64 MiB): what decoding a delta
#: holds in memory is bounded by it (larger bodies are stored whole).
_MAX_WINDOW_LOG = 26


@dataclass(frozen=True, slots=True)
class Encoded:
    """One body as stored: ``codec`` (see the module docstring), the stored ``data`` (bytes) and,
    for ``zstd-delta``, ``base_sha256`` (the dictionary body's sha256, 64 hex digits)."""

    codec: str
    data: bytes
    base_sha256: str | None = None


def encode_whole(body: bytes, codec: str = ZSTD) -> Encoded:
    """``body`` compressed on its own with ``codec`` (``zstd`` or ``zlib``); ``identity`` when
    compression would not make it smaller. Raises ``ValueError`` for another codec."""
    if codec == ZSTD:
        data = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(body)
    elif codec == ZLIB:
        data = zlib.compress(body, ZLIB_LEVEL)
    else:
        raise ValueError(f"cannot write blobs with codec {codec!r}")
    if codec == ZSTD and len(data) >= len(body):
        return Encoded(IDENTITY, bytes(body))
    return Encoded(codec, data)


def _dictionary(base: bytes) -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def encode_delta(body: bytes, base: bytes, base_sha256: str) -> Encoded | None:
    """``body`` as a ``zstd-delta`` against the raw ``base`` body (whose blob is stored whole
    under ``base_sha256``), or ``None`` when the pair is too large for the decoder's window.

    The window covers base and body together and the match finder's hash table is sized to the
    base, so rows that did not change are found however far into the base they sit.
    """
    total = len(base) + len(body)
    window_log = max(zstandard.WINDOWLOG_MIN, math.ceil(math.log2(total + 1)))
    if window_log > _MAX_WINDOW_LOG:
        return None
    hash_log = min(max(math.ceil(math.log2(len(base) + 1)) - 1, 17), 24)
    params = zstandard.ZstdCompressionParameters.from_level(
        ZSTD_LEVEL, window_log=window_log, hash_log=hash_log, source_size=len(body)
    )
    data = zstandard.ZstdCompressor(
        compression_params=params, dict_data=_dictionary(base)
    ).compress(body)
    return Encoded(ZSTD_DELTA, data, base_sha256)


def delta_is_small(delta: Encoded, body_size: int, base_size: int, base_stored: int) -> bool:
    """Whether ``delta`` is worth keeping: at most :data:`DELTA_MAX_FRACTION` of the body's
    estimated whole size (the base's stored bytes per raw byte times ``body_size``)."""
    whole_estimate = base_stored * body_size / base_size if base_size else body_size
    return len(delta.data) <= DELTA_MAX_FRACTION * whole_estimate


def decode(
    codec: str, data: bytes, sha256: str, base: bytes | None = None, size: int | None = None
) -> bytes:
    """The raw body of one stored blob. ``base`` is the raw body of its dictionary (required for
    ``zstd-delta``, ignored otherwise). Raises :class:`JournalError` naming the blob (first 12
    hex digits of ``sha256``) when the codec is unknown or the data does not decode. The result
    is not checked against ``sha256`` here (see :meth:`Journal.body`). ``size`` (bytes, the
    blob row's) bounds what is inflated: a forged frame declaring terabytes is refused, not
    allocated."""
    if size is not None and (not isinstance(size, int) or size < 0):
        raise JournalError(f"blob {sha256[:12]} has size {size!r}, not a byte count")
    if not isinstance(data, bytes):  # SQLite keeps any type: a TEXT or INTEGER written over it
        raise JournalError(f"blob {sha256[:12]} holds {type(data).__name__}, not bytes")
    try:
        if codec == ZLIB:
            if size is None:
                return zlib.decompress(data)
            return zlib.decompressobj().decompress(data, size + 1)  # more than size: a mismatch
        if codec == IDENTITY:
            return bytes(data)
        if codec in (ZSTD, ZSTD_DELTA) and size is not None:
            declared = zstandard.frame_content_size(data)
            if declared != size:
                raise JournalError(
                    f"blob {sha256[:12]} declares {declared} bytes, its row says {size}"
                )
        if codec == ZSTD:
            return zstandard.ZstdDecompressor().decompress(data)
        if codec == ZSTD_DELTA:
            if base is None:
                raise JournalError(f"blob {sha256[:12]} is a delta and its base is missing")
            return zstandard.ZstdDecompressor(dict_data=_dictionary(base)).decompress(data)
    except (zlib.error, zstandard.ZstdError) as exc:
        raise JournalError(f"blob {sha256[:12]} does not decompress: {exc}") from exc
    except MemoryError:
        raise JournalError(f"blob {sha256[:12]} inflates to more than memory holds") from None
    raise JournalError(f"blob {sha256[:12]} has unknown codec {codec!r}")
