"""Files and folders of the data folder, created readable by the hub's own user only.

The data folder holds the SQLite database (every flow, run input and output, encrypted
secrets), the key that decrypts the secrets, and the first owner's password: nothing in it
is for other users of the machine. A folder the hub creates is 0700 and a file 0600,
whatever the process's umask; files that already exist keep the mode they have.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create the folder ``path`` (mode 0700) and its missing parents; return it.

    A folder that exists already is left as it is (its owner chose its mode).
    """
    if path.is_dir():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another process made it first
        path.mkdir(mode=DIR_MODE)
        os.chmod(path, DIR_MODE)  # mkdir's mode passes through the umask
    return path


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty, mode 0600, in a private folder, unless it exists.

    True when this call created it. SQLite creates its -wal, -shm and -journal files with
    the mode of the database file, so creating the database file this way before SQLite
    opens it makes those 0600 too (an empty file is an empty SQLite database).
    """
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, FILE_MODE)  # os.open's mode passes through the umask
    finally:
        os.close(fd)
    return True
