"""Line rules of a batch object, shared by Plan and Parse so that both count the same messages.

A line ends at LF, and a CR before the LF belongs to the line ending. A line is blank, and so is
not a message, when it contains only JSON whitespace (space, tab, CR). A UTF-8 byte order mark
at the start of the object belongs to no line.
"""

from collections.abc import Iterable, Iterator

UTF8_BOM = b"\xef\xbb\xbf"
BLANK_BYTES = b" \t\r\n"


def is_blank(line: bytes) -> bool:
    """Return whether `line` contains nothing but JSON whitespace and its line ending."""
    return not line.strip(BLANK_BYTES)


def strip_line_ending(line: bytes) -> bytes:
    """Remove a trailing LF or CRLF from `line`."""
    if line.endswith(b"\n"):
        line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
    return line


def strip_bom(chunks: Iterable[bytes]) -> tuple[int, Iterator[bytes]]:
    """Remove a UTF-8 byte order mark from the start of a byte stream.

    Returns the number of bytes removed (0 or 3) and the rest of the stream. The mark may be
    split over several chunks.
    """
    iterator = iter(chunks)
    head = b""
    for chunk in iterator:
        head += chunk
        if len(head) >= len(UTF8_BOM):
            break
    removed = len(UTF8_BOM) if head.startswith(UTF8_BOM) else 0
    return removed, _prepend(head[removed:], iterator)


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Split a byte stream into lines, each with its LF if it has one.

    The last line is yielded without LF when the stream does not end with one. Only the line
    being assembled is held in memory.
    """
    parts: list[bytes] = []
    for chunk in chunks:
        start = 0
        while (newline := chunk.find(b"\n", start)) != -1:
            parts.append(chunk[start : newline + 1])
            yield b"".join(parts)
            parts.clear()
            start = newline + 1
        if start < len(chunk):
            parts.append(chunk[start:])
    if parts:
        yield b"".join(parts)


def _prepend(head: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if head:
        yield head
    yield from rest
