"""Checkpoints: named float/int arrays plus a JSON config in one ``.npz`` file.

Safe by construction: arrays only (loaded with ``allow_pickle=False``, so loading never executes
code), the config is a JSON string, a format tag and version are stored, and writes are atomic
(a temporary file in the same folder, fsync, then rename) so a crash never leaves half a checkpoint
where a good one was.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile

import numpy as np

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError", "FORMAT_TAG", "FORMAT_VERSION", "MAX_BYTES"]

FORMAT_TAG = "ddpm-checkpoint"
FORMAT_VERSION = 1
_RESERVED = ("__format__", "__version__", "__config__")
MAX_BYTES = 1 << 30          # arrays a checkpoint may declare in all (1 GiB): checked before anything is allocated
_MAX_MEMBERS = 10_000


class CheckpointError(ValueError):
    """A file that is not a readable ddpm checkpoint (missing, truncated, foreign or from a newer version)."""


def save_checkpoint(path, arrays: dict, config: dict) -> None:
    """Write ``arrays`` (name -> numeric ndarray) and ``config`` (JSON-serialisable dict) atomically to ``path``."""
    path = os.fspath(path)
    for k, v in arrays.items():
        if k in _RESERVED:
            raise ValueError(f"array name {k!r} is reserved")
        if np.asarray(v).dtype.kind not in "biuf":
            raise ValueError(f"checkpoint arrays must be numeric; {k!r} has dtype {np.asarray(v).dtype}")
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload["__format__"] = np.array(FORMAT_TAG)
    payload["__version__"] = np.array(FORMAT_VERSION)
    payload["__config__"] = np.array(json.dumps(config, sort_keys=True))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path) -> tuple[dict, dict]:
    """Read a checkpoint written by :func:`save_checkpoint`. Returns (arrays, config).

    Raises :class:`CheckpointError` saying what is wrong for a missing, truncated, corrupt or
    foreign file, or one written by a newer format version.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with open(path, "rb") as fh:
            if fh.read(6) == b"\x93NUMPY":
                raise CheckpointError(f"{path}: not a ddpm checkpoint (a single .npy array, not an .npz archive)")
            fh.seek(0)
            _check_members(path, fh)                  # headers only: dtypes and declared sizes, nothing allocated
            fh.seek(0)
            z = np.load(fh, allow_pickle=False)
            if "__format__" not in z.files or str(z["__format__"]) != FORMAT_TAG:
                raise CheckpointError(f"{path}: not a ddpm checkpoint (no '{FORMAT_TAG}' tag); "
                                      f"it holds arrays {sorted(z.files)[:8]}")
            version = int(z["__version__"])
            if version > FORMAT_VERSION:
                raise CheckpointError(f"{path}: checkpoint format version {version} is newer than this "
                                      f"library reads ({FORMAT_VERSION}); upgrade ddpm")
            config = json.loads(str(z["__config__"]))
            if not isinstance(config, dict):
                raise CheckpointError(f"{path}: not a ddpm checkpoint (its config is a JSON {type(config).__name__}, "
                                      f"not an object)")
            arrays = {k: z[k] for k in z.files if k not in _RESERVED}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, KeyError, TypeError,
            OverflowError, NotImplementedError, RuntimeError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a readable ddpm checkpoint (truncated or corrupt: {e})") from None
    return arrays, config


def _check_members(path: str, fh) -> None:
    """Read every member's .npy header (not its data) and refuse, before any allocation, members that
    are not plain numeric arrays (object or structured dtypes, text outside the reserved entries), that
    declare more bytes than they hold, or that together declare more than MAX_BYTES (a memory bomb)."""
    with zipfile.ZipFile(fh) as zf:
        infos = zf.infolist()
        if len(infos) > _MAX_MEMBERS:
            raise CheckpointError(f"{path}: not a ddpm checkpoint ({len(infos)} archive members)")
        total = 0
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else None
            if name is None:
                raise CheckpointError(f"{path}: not a ddpm checkpoint (archive member {info.filename!r} is not .npy)")
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version in ((2, 0), (3, 0)):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise CheckpointError(f"{path}: array {name!r} has an unknown .npy format version {version}")
            text_ok = name in _RESERVED and dtype.kind == "U"
            if dtype.hasobject or dtype.fields is not None or (dtype.kind not in "biuf" and not text_ok):
                raise CheckpointError(f"{path}: array {name!r} has dtype {dtype}; a checkpoint holds numeric arrays only")
            nbytes = math.prod(int(d) for d in shape) * dtype.itemsize          # Python ints: no overflow
            if nbytes > info.file_size:
                raise CheckpointError(f"{path}: array {name!r} declares shape {shape} ({nbytes} bytes) but holds "
                                      f"{info.file_size} bytes (truncated or forged)")
            total += nbytes
            if total > MAX_BYTES:
                raise CheckpointError(f"{path}: arrays declare more than {MAX_BYTES} bytes; refused before loading")
