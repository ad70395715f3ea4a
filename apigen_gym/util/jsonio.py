"""JSON helpers: τ-bench-compatible dumps, canonical hashing, wire bytes, deterministic and atomic files."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TextIO, TypeVar, cast

import orjson
import ujson
from pydantic import BaseModel
from pydantic_core import from_json

M = TypeVar("M", bound=BaseModel)


def _read_umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_UMASK = _read_umask()  # read once at import: os.umask is process-wide and not thread-safe


_C_MAKE_ENCODER = getattr(json.encoder, "c_make_encoder", None)  # the C accelerator, when present
_C_ENCODE = (
    None
    if _C_MAKE_ENCODER is None
    else _C_MAKE_ENCODER(
        None,
        json.JSONEncoder().default,
        json.encoder.encode_basestring_ascii,
        None,
        ": ",
        ", ",
        False,
        False,
        True,
    )
)
_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]

scan: Any = _SCAN
"""``scan(text, index) -> (value, end)``: the stdlib decoder's C scanner, reading the one JSON value that
starts exactly at ``index`` (``StopIteration`` if none does, ``json.JSONDecodeError`` for a bad one)."""


def dumps(obj: Any) -> str:
    """Exactly ``json.dumps(obj)`` (default separators, ASCII, keys in insertion order), made faster.

    ``json.dumps`` builds a new C encoder on every call; this one is built once (without the circular
    reference check: a cycle raises ``RecursionError`` instead of ``ValueError``).
    """
    if _C_ENCODE is None:
        return json.dumps(obj)
    return "".join(_C_ENCODE(obj, 0))


_ujson_text: Any = ujson.dumps
_UJSON_SPELLING = (True, False, False, False, 0, True, True, None, (", ", ": "))
"""ujson's arguments after the value, given by position (keywords cost more than a small value's
encoding): ensure_ascii, encode_html_chars, escape_forward_slashes, sort_keys, indent, allow_nan,
reject_bytes, default, separators."""
_SHORT_EXPONENT = re.compile(r"\de-\d")
"""Where ujson spells a float's exponent with one digit (``1e-5``), json.dumps with two (``1e-05``)."""


_PROBE = {
    "text": ["caf\u00e9 \U0001f600", '\x00\x1f\u2028 / <> & \\ "', "\ud800"],
    "numbers": [0, -7, 2**70, 0.1, -0.0, 250.0, 1e16, 1.5e300, 5e-324, 0.0001, float("inf"), float("nan")],
    "others": [True, False, None, (1, [])],
    7: {1.5: {}, True: [], None: "", 1e16: 0},
}
"""Each kind of value whose spelling :func:`dumps_quickly` takes from ujson."""
_UJSON_AGREES = dumps(_PROBE) == _ujson_text(_PROBE, *_UJSON_SPELLING)
"""Whether the installed ujson spells the probe as the stdlib does (else the stdlib writes every value)."""


def dumps_quickly(obj: Any) -> str:
    """``json.dumps(obj)`` for a JSON value, written by ujson (about twice as quick) wherever its text
    is the same, else by :func:`dumps`.

    A JSON value: what ``json.loads`` gives, and tuples, str subclasses, and int, finite float, bool
    or ``None`` keys. ujson writes those as the stdlib does but for two spellings, each of which
    sends the value to the stdlib: a one-digit negative exponent (``1e-5``, json's ``1e-05``; so does
    any text with a digit, ``e-``, a digit) and DEL unescaped (json's ``\\u007f``). Values ujson
    refuses go to the stdlib, which raises what ``json.dumps`` raises. Not JSON values, and not the
    stdlib's answer: an infinite or NaN key (``"inf"``, json's ``"Infinity"``), ``Decimal``, tuple
    keys and objects with ``__json__`` or ``toDict``, which ujson writes and the stdlib refuses, and a
    dict subclass whose ``items()`` differ from its contents. (Looking for those keys in the text
    would cost a third of what ujson saves.)
    """
    if not _UJSON_AGREES:
        return dumps(obj)
    try:
        text: str = _ujson_text(obj, *_UJSON_SPELLING)
    except Exception:  # noqa: BLE001 - whatever ujson refuses, the stdlib answers for itself
        return dumps(obj)
    if "\x7f" in text or ("e-" in text and _SHORT_EXPONENT.search(text) is not None):
        return dumps(obj)
    return text


NOT_READ: Any = object()
"""What :func:`read_quickly` gives for a text it leaves to the stdlib."""
QUICK_FROM = 120
"""Texts this long and longer are read quicker by orjson; shorter ones by the stdlib's scanner, whose
set-up is lighter."""

_DIGITS_AS_ZEROS = bytes(48 if byte in b"0123456789" else 32 for byte in range(256))
"""A translation table: each digit becomes ``0``, every other byte a space."""
_LONG_RUN = b"0" * 19
"""19 digits in a row, once translated: where a number may be past 64 bits, which orjson reads as a
float, not an int."""


def read_quickly(text: str) -> Any:
    """``json.loads(text)`` read by orjson, or :data:`NOT_READ` where that is not quicker (a text
    shorter than :data:`QUICK_FROM`) or orjson cannot vouch for the same value: a text holding a run
    of 19 digits (an integer past 64 bits would become a float), and any text orjson refuses (``NaN``,
    ``Infinity``, lone surrogates, numbers past the float range, and every error, whose message the
    stdlib gives)."""
    if len(text) < QUICK_FROM:
        return NOT_READ
    try:
        data = text.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return NOT_READ
    if _LONG_RUN in data.translate(_DIGITS_AS_ZEROS):
        return NOT_READ
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return NOT_READ


def loads(text: str) -> Any:
    """Exactly ``json.loads(text)`` for a ``str``, errors included, without its per-call set-up (and
    read by orjson where it gives the same value, see :func:`read_quickly`)."""
    value = read_quickly(text)
    if value is not NOT_READ:
        return value
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return json.loads(text)  # leading whitespace or no value: let the stdlib decide and explain
    if end != len(text):
        return json.loads(text)  # trailing whitespace or extra data: the same
    return value


def to_wire(obj: Any) -> bytes:
    """Compact UTF-8 JSON for a request body (orjson; the stdlib for what orjson refuses)."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # e.g. non-string keys or integers past 64 bits, which JSON itself allows
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def from_wire(data: bytes) -> Any:
    """The value of a JSON answer; raises ``ValueError`` when it is not JSON."""
    return orjson.loads(data)


def canonical(obj: Any) -> str:
    """Key-sorted compact JSON: equal values give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical(obj).encode()).hexdigest()


@contextmanager
def _atomic_file(path: str | os.PathLike[str], mode: str) -> Iterator[Any]:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        binary = "b" in mode
        with os.fdopen(
            fd, mode, encoding=None if binary else "utf-8", newline=None if binary else "\n"
        ) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_writer(path: str | os.PathLike[str]) -> AbstractContextManager[TextIO]:
    """Write a text file through a temporary beside it, moved into place on success: all or nothing."""
    return _atomic_file(path, "w")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half."""
    with atomic_writer(path) as handle:
        handle.write(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """:func:`atomic_write_text` for bytes (lines kept exactly as they were)."""
    with _atomic_file(path, "wb") as handle:
        handle.write(data)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write a data file deterministically (indent 1, UTF-8, trailing newline), atomically."""
    atomic_write_text(path, json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Any]) -> None:
    """Write one JSON object per line, atomically."""
    atomic_write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[Any]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


@dataclass
class _Written:
    """The models this process appended to a file it started empty, while the file holds just them."""

    model: type[BaseModel]
    size: int
    rows: list[BaseModel]
    lines: dict[int, str] = field(default_factory=dict)
    """Each row's line, by the row's ``id`` (the row itself is in ``rows``, so its ``id`` stays its own)."""


_WRITTEN: dict[Path, _Written] = {}
WRITTEN_KEPT_BYTES = 32 * 2**20
"""A file this process writes is read back from memory while it is at most this large."""
WRITTEN_KEPT_FILES = 8
"""Files kept for reading back, the most recently started (a run's worth): a process that makes run
after run does not keep every one in memory."""


class UnreadableLines(UserWarning):
    """Lines of a JSONL file that are not records were skipped (and left in the file as they are)."""


def _where(numbers: list[int], shown: int = 5) -> str:
    """``line 7``, ``lines 2–89, 93`` (runs of line numbers; the first few runs only)."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    parts = [str(run[0]) if len(run) == 1 else f"{run[0]}–{run[-1]}" for run in runs[:shown]]
    more = ", …" if len(runs) > shown else ""
    return f"line {parts[0]}" if len(numbers) == 1 else f"lines {', '.join(parts)}{more}"


def model_from_json(model: type[M], data: str | bytes) -> M:
    """``model.model_validate_json(data)``, a third quicker for large records: the JSON is read first
    (by pydantic's own reader), then its values are validated. ``ValueError`` if it is not a record."""
    return model.model_validate(from_json(data))


class RecordLine(Generic[M]):
    """A record and its JSON line, each made from the other when first asked for. Where the record
    was made, it is held and its line made once; in a process that was sent the line alone (a worker's
    record, on its way to the driver), the record is read from the line only if it is needed."""

    __slots__ = ("_record", "_line")
    model: ClassVar[type[BaseModel]]
    """The record's model, which reads the line."""

    def __init__(self, record: M):
        self._record: M | None = record
        self._line: str | None = None

    @property
    def line(self) -> str:
        """The record's JSON, as written to the files."""
        if self._line is None:
            self._line = self.record.model_dump_json()
        return self._line

    @property
    def record(self) -> M:
        """The whole record (read from the line in a process it was sent to)."""
        if self._record is None:
            self._record = cast(M, model_from_json(self.model, self._line or ""))
        return self._record

    @property
    def held(self) -> M | None:
        """The whole record when this process has it without reading it."""
        return self._record


def held_rows(path: str | os.PathLike[str], model: type[M]) -> list[M] | None:
    """The ``model`` rows of a file that this process started with a :class:`JsonlAppender` and that
    holds just what it wrote (and is small enough to be kept), as the very objects written (read-only);
    ``None`` when they are not held."""
    target = Path(path)
    written = _WRITTEN.get(target.resolve())
    if written is None or written.model is not model or not target.is_file():
        return None
    if written.size != target.stat().st_size:
        return None
    return list(written.rows)  # type: ignore[arg-type]


def forget_written() -> None:
    """Let go of the rows kept for reading back (they are read from their files again): for a process
    done with its runs' files, or one that starts its next run as a new process would."""
    _WRITTEN.clear()


def held_line(row: BaseModel) -> str | None:
    """The line a held row (one :func:`read_models` gives back without parsing) was written as, so that
    sending it on costs no encoding; ``None`` for any other model."""
    key = id(row)
    for written in _WRITTEN.values():
        line = written.lines.get(key)
        if line is not None:
            return line
    return None


def read_models(path: str | os.PathLike[str], model: type[M]) -> Iterator[M]:
    """Every row of a JSONL file that is a ``model``, read as bytes (any file can be read).

    A torn last line (a write cut short by a kill) is ignored. Other lines that are not records,
    binary data included, are skipped with an :class:`UnreadableLines` warning that says how many
    and where; the file is never changed. Rows this process wrote with a :class:`JsonlAppender` (to a
    file it started) come back as the very objects written, not parsed again, as long as the file is
    unchanged: treat them as read-only.
    """
    target = Path(path)
    if not target.is_file():
        return
    held = held_rows(target, model)
    if held is not None:
        yield from held
        return
    unreadable: list[int] = []
    with target.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield model_from_json(model, line)
            except ValueError:
                if line.endswith(b"\n"):
                    unreadable.append(number)
    if unreadable:
        warnings.warn(
            f"{target}: {len(unreadable)} unreadable line{'s' if len(unreadable) > 1 else ''} skipped "
            f"({_where(unreadable)}), left in the file as they are",
            UnreadableLines,
            stacklevel=2,
        )


def _is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except ValueError:
        return False
    return True


class JsonlAppender:
    """Appends one JSON row per record and flushes it: a killed process keeps every finished row.

    A torn last line left by an earlier kill is cut off first, so appends start on a fresh line (a
    last line that is whole but lacks its newline gets one instead).
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file() and self.path.stat().st_size:
            data = self.path.read_bytes()
            if not data.endswith(b"\n"):
                start = data.rfind(b"\n") + 1
                with self.path.open("r+b") as handle:
                    if _is_json(data[start:]):  # complete, only its newline is missing: keep it
                        handle.seek(0, os.SEEK_END)
                        handle.write(b"\n")
                    else:
                        handle.truncate(start)
        self._handle = self.path.open("ab")
        self._key = self.path.resolve()
        self._written: _Written | None = None
        _WRITTEN.pop(self._key, None)
        if self._handle.tell() == 0:  # a file this appender starts: its rows can be read back from memory
            self._written = _WRITTEN[self._key] = _Written(BaseModel, 0, [])
            while len(_WRITTEN) > WRITTEN_KEPT_FILES:  # the oldest go
                del _WRITTEN[next(iter(_WRITTEN))]

    def write(self, record: BaseModel | None, line: str | None = None) -> None:
        """Append ``record``; ``line``: its ``model_dump_json()`` when already made (by a worker). With
        the ``line`` alone (``record`` not at hand), the rows are read from the file again."""
        if line is None:
            if record is None:
                raise ValueError("nothing to write: neither a record nor its line")
            line = record.model_dump_json()
        self._handle.write(line.encode() + b"\n")
        self._handle.flush()
        self._remember(record, line)

    def _remember(self, record: BaseModel | None, line: str) -> None:
        """Keep ``record`` for :func:`read_models`, while the file holds only this appender's rows."""
        written = self._written
        if written is None or _WRITTEN.get(self._key) is not written:
            return
        if record is None:
            _WRITTEN.pop(self._key, None)
            self._written = None
            return
        if written.model is BaseModel:
            written.model = type(record)
        size = self._handle.tell()
        if type(record) is not written.model or size > WRITTEN_KEPT_BYTES:
            _WRITTEN.pop(self._key, None)
            self._written = None
            return
        written.rows.append(record)
        written.lines[id(record)] = line
        written.size = size

    def close(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
