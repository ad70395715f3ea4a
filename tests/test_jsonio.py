"""util.jsonio: the stdlib-exact fast dumps/loads, and JSONL rows read back from what this process wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from apigen_gym.util import jsonio

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(values)
def test_dumps_and_loads_are_the_stdlib_ones(value: object) -> None:
    text = jsonio.dumps(value)
    assert text == json.dumps(value)
    assert jsonio.dumps(jsonio.loads(text)) == text


@pytest.mark.parametrize(
    "text", ["", "  ", "{", '{"a": 1} x', '{"a": 1,}', "nul", '[1, "a" 2]', '"\\x"', " {} "]
)
def test_loads_fails_and_succeeds_like_the_stdlib(text: str) -> None:
    try:
        expected: object = json.loads(text)
    except json.JSONDecodeError as exc:
        expected = (exc.msg, exc.pos)
    try:
        got: object = jsonio.loads(text)
    except json.JSONDecodeError as exc:
        got = (exc.msg, exc.pos)
    assert got == expected


@pytest.mark.parametrize(
    "text",
    [
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775809",
        '{"n": [123456789012345678901234567890, 1]}',
        '"account 12345678901234567890"',
        "1e400",
        "-1e400",
        "1.5e-400",
        "NaN",
        "[Infinity, -Infinity]",
        '"\\ud800"',
        '"\ud800"',
        "-0",
        "-0.0",
        "4.9e-324",
        "9007199254740993",
        '{"a": 1, "b": 2, "a": 3}',
    ],
)
def test_loads_gives_the_stdlibs_very_values(text: str) -> None:
    """Type for type: an integer past 64 bits stays an int, NaN and lone surrogates are read; in a
    short text (the stdlib's scanner) and a long one (orjson, where it reads the same)."""
    for whole in (text, long_text(text)):
        assert repr(jsonio.loads(whole)) == repr(json.loads(whole))


def long_text(value_text: str) -> str:
    """``value_text`` inside a text long enough for orjson to read it."""
    return '{"padding": "' + "x" * jsonio.QUICK_FROM + '", "value": ' + value_text + "}"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False))
def test_loads_reads_numbers_as_the_stdlib(number: float) -> None:
    for text in (json.dumps(number), repr(number).replace("inf", "Infinity")):
        for whole in (text, long_text(text)):
            assert repr(jsonio.loads(whole)) == repr(json.loads(whole))


def test_orjson_reads_long_texts_and_leaves_the_rest_to_the_stdlib() -> None:
    assert jsonio.read_quickly(long_text("[1, 2.5]")) == {
        "padding": "x" * jsonio.QUICK_FROM,
        "value": [1, 2.5],
    }
    for left in ("[1, 2.5]", long_text("18446744073709551616"), long_text("NaN"), long_text("[1,]")):
        assert jsonio.read_quickly(left) is jsonio.NOT_READ


any_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None), max_size=8)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(
            any_text
            | st.integers()
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.booleans()
            | st.none(),
            inner,
            max_size=4,
        )
    ),
    max_leaves=16,
)


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(json_values)
def test_dumps_quickly_writes_what_json_dumps_writes(value: object) -> None:
    """Every code point, integers past 64 bits, every float (NaN, infinities, exponents), tuples, and
    int, finite float, bool and None keys: the same text as json.dumps, whoever wrote it."""
    assert jsonio.dumps_quickly(value) == json.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        1e-05,
        [1.5e-7, "1e-5 as text"],
        "\x7f",
        "".join(map(chr, range(0x800))),
        {"ids": [2**64, -(2**63) - 1], "price": 250.0, "ratio": 1 / 3, "small": 0.0001, "big": 1e16},
    ],
)
def test_dumps_quickly_where_ujson_spells_otherwise(value: object) -> None:
    """Where ujson's spelling differs (one-digit exponents, DEL) the stdlib writes."""
    assert jsonio.dumps_quickly(value) == json.dumps(value)


def test_dumps_quickly_is_ujson_where_it_agrees() -> None:
    """The quick path is taken (not the stdlib for everything), and the installed ujson agrees."""
    assert jsonio._UJSON_AGREES
    sentinel = {"a": [1, 2.5, None, True, "caf\u00e9"]}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jsonio, "dumps", lambda obj: pytest.fail("the stdlib wrote a value ujson writes"))
        assert jsonio.dumps_quickly(sentinel) == json.dumps(sentinel)


def test_dumps_quickly_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError):
        jsonio.dumps_quickly({"a": object()})
    with pytest.raises(TypeError):
        jsonio.dumps_quickly({"a": b"bytes"})
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises((ValueError, RecursionError)):
        jsonio.dumps_quickly(loop)


def test_dumps_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError):
        jsonio.dumps({"a": object()})
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises((ValueError, RecursionError)):
        jsonio.dumps(loop)


class Row(BaseModel):
    n: int
    tags: list[str] = []


def test_rows_written_by_this_process_come_back_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    rows = [Row(n=i, tags=["x"] * i) for i in range(3)]
    with jsonio.JsonlAppender(path) as appender:
        for row in rows:
            appender.write(row)
    read = list(jsonio.read_models(path, Row))
    assert read == rows and all(a is b for a, b in zip(read, rows))  # the very objects, same file bytes
    assert [json.loads(line) for line in path.read_text().splitlines()] == [r.model_dump() for r in rows]
    with path.open("a", encoding="utf-8") as other:  # someone else appends: read from the file again
        other.write(Row(n=9).model_dump_json() + "\n")
    again = list(jsonio.read_models(path, Row))
    assert again == [*rows, Row(n=9)] and again[0] is not rows[0]


def test_rows_let_go_are_read_from_the_file_again(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    rows = [Row(n=i) for i in range(3)]
    with jsonio.JsonlAppender(path) as appender:
        for row in rows:
            appender.write(row)
    assert jsonio.held_rows(path, Row) == rows
    jsonio.forget_written()
    assert jsonio.held_rows(path, Row) is None
    read = list(jsonio.read_models(path, Row))
    assert read == rows and read[0] is not rows[0]


def test_a_line_written_without_its_record_is_read_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    with jsonio.JsonlAppender(path) as appender:
        appender.write(Row(n=1))
        appender.write(None, Row(n=2, tags=["sent"]).model_dump_json())  # a worker's line, no record here
        appender.write(Row(n=3))
        with pytest.raises(ValueError, match="nothing to write"):
            appender.write(None)
    assert list(jsonio.read_models(path, Row)) == [Row(n=1), Row(n=2, tags=["sent"]), Row(n=3)]


def test_a_resumed_file_is_read_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(Row(n=1).model_dump_json() + "\n" + '{"n": 2', encoding="utf-8")  # a torn last line
    with jsonio.JsonlAppender(path) as appender:
        appender.write(Row(n=3))
    assert [r.n for r in jsonio.read_models(path, Row)] == [1, 3]


def test_only_the_most_recent_files_are_kept_for_reading_back(tmp_path: Path) -> None:
    kept = jsonio.WRITTEN_KEPT_FILES
    first = [Row(n=0)]
    paths = [tmp_path / f"run{i}.jsonl" for i in range(kept + 1)]
    for i, path in enumerate(paths):
        with jsonio.JsonlAppender(path) as appender:
            appender.write(first[0] if i == 0 else Row(n=i))
    oldest, newest = list(jsonio.read_models(paths[0], Row)), list(jsonio.read_models(paths[-1], Row))
    assert oldest == first and oldest[0] is not first[0]  # let go of: read from its file, same rows
    assert newest[0].n == kept and list(jsonio.read_models(paths[-1], Row))[0] is newest[0]


class Nested(BaseModel):
    row: Row
    extra: dict[str, object] = {}
    share: float = 0.0
    label: Literal["a", "b"] = "a"


@pytest.mark.parametrize(
    "text",
    [
        Nested(
            row=Row(n=3, tags=["é", "x"]), extra={"big": 2**80, "f": 1e-7, "l": [1, None]}
        ).model_dump_json(),
        '{"row": {"n": 1}, "share": 2, "label": "b"}',
        '{"row": {"n": "1"}}',
        '{"row": {"n": 1.5}}',
        '{"row": {"n": 1}, "label": "c"}',
        '{"row": {"n": 1}',
        '{"row": {"n": 1}, "extra": {"x": NaN}}',
        "[]",
    ],
)
def test_model_from_json_reads_as_model_validate_json(text: str) -> None:
    """Parsed first, then validated: the same record, or a ValueError where pydantic refuses the text."""
    try:
        expected: object = Nested.model_validate_json(text)
    except ValueError:
        expected = ValueError
    try:
        got: object = jsonio.model_from_json(Nested, text.encode())
    except ValueError:
        got = ValueError
    if isinstance(expected, Nested) and isinstance(got, Nested):  # NaN is not equal to itself: as text
        assert got.model_dump_json() == expected.model_dump_json() and repr(got) == repr(expected)
    else:
        assert got == expected
