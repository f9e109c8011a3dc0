"""Files tracethread writes (reports, SARIF, baselines, traces): checked before the
program runs, written whole or not at all."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any


def check_output(path: str, option: str) -> str | None:
    """Why ``path`` cannot be written (by ``option``), or None. Checked before the program
    runs, by creating (and removing) a file beside it: what the report writer does."""
    if not path:
        return f"{option}: an empty path"
    full = os.path.abspath(path)
    directory = os.path.dirname(full)
    if os.path.isdir(full):
        return f"{option} {path!r}: is a directory"
    if not os.path.isdir(directory):
        return f"{option} {path!r}: directory {directory!r} does not exist"
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".tracethread-probe-")
    except OSError as exc:
        return f"{option} {path!r}: cannot write in {directory!r} ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(probe)
    return None


def write_text(path: str, text: str) -> None:
    """Write ``path`` whole or not at all: a new file made with O_EXCL beside it
    (``mkstemp``: a name nobody could have placed a symlink at), then renamed over it."""
    import tempfile
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _umask() -> int:
    """The process's umask, read without setting it (``os.umask`` would change it for
    every thread for a moment); 022 where /proc does not say."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def write_json(path: str, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")
