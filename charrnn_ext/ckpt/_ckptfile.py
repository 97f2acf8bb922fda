"""Checkpoint files on disk: the hardened reader of their .npz archives and the atomic writer."""
from __future__ import annotations

import math
import os
import re
import secrets
import stat
import threading
import zipfile

import numpy as np

from .._machine import available_memory
from ..core.spec import check_real_dtype

# -- reading: what a file may hold ---------------------------------------------
# Loading reads a file from a stranger. Its invariants, each checked before the
# bytes it guards are read: the path is a regular file (reading a FIFO or a
# device never ends) of at most max_file_size(limits) bytes; every member is
# one the format defines (``limits``: name -> the most bytes its data may
# take), stored uncompressed, with a .npy header whose dtype is real
# (spec.check_real_dtype) or a string and whose shape needs exactly the
# member's declared size, within the member's limit; and the declared sizes
# add up to at most the file's size (no two members share bytes). So nothing
# is decompressed, and loading allocates about the file's size, in time
# proportional to it.

NPY_MAX_HEADER = 10_000     # bytes of a member's .npy header (numpy's own default)
MEMBER_OVERHEAD = 2 * 1024  # zip headers of one member, besides its .npy header


def max_file_size(limits: dict) -> int:
    """The largest file an archive with these member ``limits`` can be:
    every member at its limit."""
    return sum(limits.values()) + len(limits) * (NPY_MAX_HEADER + MEMBER_OVERHEAD)


def check_member(name: str, dtype: np.dtype, shape: tuple, limits: dict) -> int:
    """The bytes of data of member ``name`` with this dtype and shape, or
    ValueError unless ``limits`` has the member, its dtype is real or a
    string, and its size is within the member's limit. Loading checks each
    member's .npy header so before reading its data; saving checks each
    array it is about to write."""
    if name not in limits:
        raise ValueError(f"'{name}' is not a member of a charrnn_ext checkpoint")
    if dtype.kind != "U" or dtype.fields is not None:
        try:
            check_real_dtype(dtype, f"'{name}'")
        except TypeError as exc:
            raise ValueError(str(exc)) from None
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"'{name}' has shape {shape}")
    nbytes = dtype.itemsize * math.prod(shape)
    if nbytes > limits[name]:
        raise ValueError(f"'{name}' takes {nbytes:,} bytes, more than the {limits[name]:,} "
                         "a checkpoint may hold there")
    return nbytes


def _file_kind(mode: int) -> str | None:
    """None for a regular file, else what it is."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device")):
        if test(mode):
            return kind
    return "not a regular file"


def _open_regular(path: str, limit: int):
    """(binary file object, size) of the regular file ``path`` of at most
    ``limit`` bytes, or ValueError. Checked before opening (opening a FIFO
    waits for a writer, reading a device may never end) and again on the
    open file, which may not be the file checked (O_NONBLOCK makes opening a
    FIFO return at once)."""
    def check(st) -> None:
        kind = _file_kind(st.st_mode)
        if kind is not None:
            raise ValueError(f"{path} is not a charrnn_ext checkpoint ({kind}, not a regular file)")
        if st.st_size > limit:
            raise ValueError(f"{path} is not a charrnn_ext checkpoint ({st.st_size:,} bytes, "
                             f"more than a checkpoint can be)")

    check(os.stat(path))  # OSError (FileNotFoundError, PermissionError, ...) propagates
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        check(st)
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


class Refused(ValueError):
    """A file refused by a check of ours (its message is final)."""


class Foreign(Refused):
    """A zip archive that is not a charrnn_ext checkpoint at all."""


def _npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo):
    """(dtype, shape, header size) of the .npy member ``info``: only its
    header is read, at most NPY_MAX_HEADER bytes of it."""
    with archive.open(info) as fp:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            read_header = np.lib.format.read_array_header_1_0
        elif version == (2, 0):
            read_header = np.lib.format.read_array_header_2_0
        else:
            raise Refused(f"member {info.filename!r} is .npy version {version}, not 1.0 or 2.0")
        shape, _, dtype = read_header(fp, max_header_size=NPY_MAX_HEADER)
        return dtype, shape, fp.tell()


def _read_member(archive: zipfile.ZipFile, name: str, info: zipfile.ZipInfo,
                 limits: dict) -> np.ndarray:
    """The array of the stored member ``name``. Its data is read only once its
    .npy header passes check_member and needs exactly the declared size."""
    dtype, shape, header_size = _npy_header(archive, info)
    try:
        nbytes = check_member(name, dtype, shape, limits)
    except ValueError as exc:
        raise Refused(str(exc)) from None
    if info.file_size != header_size + nbytes:
        raise Refused(f"member {info.filename!r} declares {info.file_size:,} bytes, "
                      f"its header {header_size + nbytes:,}")
    with archive.open(info) as fp:  # reads exactly file_size bytes, checking the CRC
        return np.lib.format.read_array(fp, allow_pickle=False, max_header_size=NPY_MAX_HEADER)


def _read_members(archive: zipfile.ZipFile, file_size: int, limits: dict,
                  format_name: str) -> dict:
    """The arrays of the checkpoint ``archive`` (see the invariants above)."""
    members, others = {}, []
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            others.append(info.filename)
            continue
        name = info.filename[:-len(".npy")]
        if name in members:
            raise Refused(f"member {info.filename[:80]!r} appears twice")
        members[name] = info
    if "format" not in members:
        raise Foreign("no format marker")
    for info in members.values():  # stored: what is read is in the file, nothing inflates
        if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
            raise Refused(f"member {info.filename!r} is compressed (checkpoints are stored)")
    fmt = _read_member(archive, "format", members["format"], limits)
    if fmt.dtype.kind != "U" or fmt.shape != () or str(fmt) != format_name:
        raise Foreign("no format marker")
    unknown = others + [info.filename for name, info in members.items() if name not in limits]
    if unknown:
        raise Refused(f"member {unknown[0][:80]!r} is not part of the format")
    total = sum(info.file_size for info in members.values())
    if total > file_size:
        raise Refused("its members claim more bytes than the file holds")
    available = available_memory()  # the arrays, then the model's own copies of them
    if available is not None and 2 * total > available:
        raise Refused(f"loading it needs about {2 * total / 2**30:.1f} GiB of memory, "
                      f"{available / 2**30:.1f} GiB is available")
    arrays = {"format": fmt}
    for name, info in members.items():
        if name != "format":
            arrays[name] = _read_member(archive, name, info, limits)
    return arrays


def read_arrays(path: str, limits: dict, format_name: str) -> dict:
    """The arrays of the checkpoint file at ``path`` (members and their
    ``limits``, marked with the member ``format`` = ``format_name``), or
    ValueError (OSError if it cannot be read). Any other exception while
    parsing the file's bytes means a damaged or foreign file (numpy's header
    parser alone can raise SyntaxError, tokenize.TokenError, ...), so all of
    them become one clear ValueError; only MemoryError passes."""
    f, size = _open_regular(path, max_file_size(limits))
    with f:
        head = f.read(4)
        if head != b"PK\x03\x04":  # every .npz (zip) archive starts so
            what = "empty" if not head else "not an .npz archive"
            raise ValueError(f"{path} is not a charrnn_ext checkpoint ({what})")
        f.seek(0)
        try:
            with zipfile.ZipFile(f) as archive:
                return _read_members(archive, size, limits, format_name)
        except Foreign as exc:
            raise ValueError(f"{path} is not a charrnn_ext checkpoint ({exc})") from None
        except Refused as exc:
            raise ValueError(f"{path} is a damaged or incompatible checkpoint: {exc}") from None
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 -- see the docstring
            raise ValueError(f"{path} is a damaged or truncated checkpoint "
                             f"({describe(exc)})") from None


def describe(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if empty)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- writing: atomically, and no temporary file outlives its writer ---------------
# A file is written as ".<name>.-XXXXXXX.tmp" beside it, then renamed over it.
# The writer holds an exclusive flock on its temporary file from creating it
# until the rename, and the kernel drops the lock when the writer dies however
# it dies (SIGKILL, a crash, power loss), so an unlocked temporary file of a
# target is a dead writer's: every save first removes those of its target.
# The "-" is never in a name of tempfile.mkstemp ([a-z0-9_]), so files that
# others write that way without a lock (a mkstemp probe of the directory) are
# never taken for them; the name is exactly as long as such a probe's, so a
# probe's check of the name's length holds for the save (probe() below makes
# the save's own name and lock).
# Where flock does not exist (Windows) nothing is removed.

_TMP_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"
_writing: set = set()           # temporary files this process is writing now
_writing_lock = threading.Lock()


def temp_name_pattern(target: str) -> re.Pattern:
    """The names of the temporary files of a save to ``target`` (a base name)."""
    return re.compile(re.escape(f".{target}.") + r"-[a-z0-9_]{7}\.tmp\Z")


def _flock():
    try:
        import fcntl
    except ImportError:  # Windows
        return None
    return fcntl


def _create_locked(directory: str, target: str) -> tuple[int, str]:
    """(fd, path) of a new empty temporary file for ``target``, locked."""
    fcntl = _flock()
    flags = (os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
             | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0))
    for _ in range(1000):
        suffix = "".join(secrets.choice(_TMP_ALPHABET) for _ in range(7))
        path = os.path.join(directory, f".{target}.-{suffix}.tmp")
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            continue
        if fcntl is None:
            return fd, path
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a cleaner took it before we could: it removes it
            os.close(fd)
            continue
        except OSError:          # no locks on this file system: cleaners cannot lock either
            return fd, path
        try:  # still ours under that name (a cleaner may have removed it meanwhile)
            same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
        except OSError:
            same = False
        if same:
            return fd, path
        os.close(fd)
    raise FileExistsError(f"no free temporary name for {target} in {directory}")


def remove_dead_temps(directory: str, target: str) -> list:
    """Remove the temporary files of saves to ``target`` in ``directory``
    whose writers are dead (nobody holds their lock); the paths removed.
    Never fails: what cannot be checked or removed is left."""
    fcntl = _flock()
    if fcntl is None:
        return []
    pattern = temp_name_pattern(target)
    try:
        names = [name for name in os.listdir(directory) if pattern.match(name)]
    except OSError:
        return []
    removed = []
    for name in names:
        path = os.path.join(directory, name)
        with _writing_lock:  # (where flock is emulated with per-process POSIX locks)
            if path in _writing:
                continue
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):  # opened below: never a FIFO or a device
                continue
            fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held: its writer is alive
            if os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False)):
                os.unlink(path)  # under our lock: a writer that locks it next sees it gone
                removed.append(path)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def probe(path: str) -> None:
    """Create and remove a temporary file exactly as a save to ``path``
    would (its name, so its length, and its lock), or OSError: whether the
    directory takes the save, asked before the work that ends in one. One
    left by a kill between the two is a dead writer's: the next save of
    ``path`` removes it."""
    directory, target = os.path.split(os.path.abspath(path))
    fd, tmp = _create_locked(directory, target)
    try:
        os.unlink(tmp)  # under the lock, as a cleaner would
    finally:
        os.close(fd)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str, write) -> None:
    """Call ``write(f)`` with a binary file object and put what it wrote at
    ``path`` atomically: into a temporary file in the same directory, locked
    while written (see above), flushed to disk and then renamed over
    ``path``. Dead writers' temporary files of ``path`` are removed first. On
    any error (or KeyboardInterrupt) the temporary file is removed and an
    existing file at ``path`` is left untouched."""
    directory, target = os.path.split(os.path.abspath(path))
    remove_dead_temps(directory, target)
    fd, tmp = _create_locked(directory, target)
    with _writing_lock:
        _writing.add(tmp)
    try:
        # closefd=False: the lock lives as long as fd, kept open until the rename
        # (Windows renames no open file, and has no lock to keep)
        with os.fdopen(fd, "wb", closefd=_flock() is None) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_current_umask())  # created 0600, as mkstemp does
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        with _writing_lock:
            _writing.discard(tmp)
        if _flock() is not None:
            os.close(fd)
    try:  # make the rename itself durable (POSIX); harmless where unsupported
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
