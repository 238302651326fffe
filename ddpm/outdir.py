"""The output folder of a fit: the files it writes (``OUTPUT_FILES``), the lock that keeps a second fit out
of a folder while one writes there (a stale lock, whose process is gone, is taken over), the refusal to
replace an earlier fit, and atomic writes (a temporary name, then a rename), so no crash or full disk
leaves half a file under a final name."""

from __future__ import annotations

import contextlib
import json
import os

__all__ = ["OUTPUT_FILES", "LOCK_FILE", "output_lock", "refuse_existing", "atomic", "write_json"]

OUTPUT_FILES = ("model.npz", "samples.npy", "samples.png", "reverse.png", "loss.png", "bound_profile.png",
                "metrics.json")
LOCK_FILE = ".ddpm.lock"      # present in --out only while a fit writes there


def refuse_existing(out, resume, overwrite: bool) -> None:
    """Refuse (FileExistsError) to write a fit into ``out`` when it already holds one of ``OUTPUT_FILES``, unless
    ``overwrite`` or the fit resumes from ``out``/model.npz itself. Call it holding ``output_lock(out)``: two
    fits cannot then both pass it."""
    if out is None:
        return
    existing = [f for f in OUTPUT_FILES if os.path.exists(os.path.join(out, f))]
    same_as_resume = resume is not None and os.path.abspath(os.fspath(resume)) == os.path.abspath(
        os.path.join(out, "model.npz"))
    if existing and not overwrite and not same_as_resume:
        raise FileExistsError(f"{out} already holds {', '.join(existing)}; choose another --out, pass "
                              f"overwrite=True (--overwrite) to replace them, or resume from {out}/model.npz")


@contextlib.contextmanager
def output_lock(out):
    """Hold ``out``/.ddpm.lock (created exclusively, holding our pid) while a fit writes there: a second fit
    into the same folder refuses. A lock whose process no longer runs (a crash, SIGKILL) is stale and taken over."""
    if out is None:
        yield
        return
    created = not os.path.isdir(out)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, LOCK_FILE)
    me = str(os.getpid())
    tmp = f"{path}.{me}"
    with open(tmp, "w") as f:                       # the pid is in the file before it appears under the lock's name
        f.write(me)
    try:
        for _ in range(3):
            try:
                os.link(tmp, path)                      # atomic and exclusive: fails if the lock exists
                break
            except FileExistsError:
                try:
                    with open(path) as f:
                        pid = int(f.read().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid > 0 and pid != os.getpid() and _alive(pid):
                    raise FileExistsError(f"{out} is being written by another fit (process {pid}, lock file "
                                          f"{path}); wait for it or choose another --out") from None
                try:
                    os.unlink(path)                     # stale: its process is gone
                except FileNotFoundError:
                    pass
        else:
            raise FileExistsError(f"could not take the lock {path}; another fit may be starting there")
    finally:
        os.unlink(tmp)
    try:
        yield
    finally:
        try:
            with open(path) as f:
                ours = f.read().strip() == me
            if ours:
                os.unlink(path)
            if created and not os.listdir(out):                            # a refused fit leaves no folder
                os.rmdir(out)
        except OSError:
            pass


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def atomic(path: str, write) -> None:
    """``write(tmp)`` into a temporary name beside ``path``, then rename: a crash or a full disk never leaves
    half a file under ``path`` (the temporary file is removed on error)."""
    root, ext = os.path.splitext(path)
    tmp = f"{root}.partial{ext}"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str, obj) -> None:
    """``obj`` as indented JSON in the file ``path`` (inside ``atomic`` for an atomic write)."""
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
