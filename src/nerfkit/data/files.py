"""Reading the small metadata files of datasets, with errors that name the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import DataError


def read_json_object(path: Path, what: str = "a JSON object") -> dict:
    """Parse a JSON file whose top level must be an object; ``what`` names what was expected."""
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON at line {e.lineno} column {e.colno} ({e.msg}); fix the file") from e
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror}); check the path and permissions") from e
    if not isinstance(meta, dict):
        found = {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(type(meta), "a number")
        raise DataError(f"{path}: the top level is {found}, expected {what}; fix the file")
    return meta


def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write ``data`` (str as UTF-8) to a temporary file beside ``path``, flush it to disk and rename it
    into place, so ``path`` is either the old file or the complete new one. The temporary file is removed
    on failure and the ``OSError`` re-raised for the caller to explain."""
    import os

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise
    return path
