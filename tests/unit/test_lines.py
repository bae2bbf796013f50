"""Tests of the line rules shared by Plan and Parse: ingest_common/lines.py."""

import pytest

from ingest_common.lines import is_blank, iter_lines, strip_bom, strip_line_ending


def _chunks(data: bytes, size: int):
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 100])
def test_lines_iter_lines_any_chunking(size):
    data = b'{"a":1}\r\n\n  \n{"b":2}'

    assert list(iter_lines(_chunks(data, size))) == [b'{"a":1}\r\n', b"\n", b"  \n", b'{"b":2}']


def test_lines_iter_lines_empty_stream():
    assert list(iter_lines([])) == []


def test_lines_lone_cr_not_line_ending():
    # JSON allows CR as whitespace inside a line, so only LF ends a line.
    assert list(iter_lines([b'{"a":\r1}\n'])) == [b'{"a":\r1}\n']


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"\n", True),
        (b"\r\n", True),
        (b" \t \r\n", True),
        (b"", True),
        (b"\x0c\n", False),
        (b"\xc2\xa0\n", False),
        (b"{}\n", False),
    ],
)
def test_lines_is_blank_json_whitespace_only(line, expected):
    assert is_blank(line) is expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [(b"x\n", b"x"), (b"x\r\n", b"x"), (b"x", b"x"), (b"x\r", b"x\r"), (b"\r\r\n", b"\r")],
)
def test_lines_strip_line_ending(line, expected):
    assert strip_line_ending(line) == expected


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_lines_strip_bom_split_over_chunks(size):
    removed, rest = strip_bom(_chunks(b"\xef\xbb\xbf{}\n", size))

    assert removed == 3
    assert b"".join(rest) == b"{}\n"


@pytest.mark.parametrize(
    "data", [b"", b"\xef", b"\xef\xbb", b"\xef\xbbx", b"{}\n", b"\xbb\xef\xbf"]
)
def test_lines_strip_bom_absent_keeps_bytes(data):
    removed, rest = strip_bom(_chunks(data, 1))

    assert removed == 0
    assert b"".join(rest) == data
