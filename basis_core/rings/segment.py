"""Named shared-memory segments: create, attach, close, unlink, and list ours in /dev/shm.

Every segment name starts with PREFIX ("basis-"), so leftovers are recognisable. Ownership:

- The creator owns the segment. It creates it with `multiprocessing.shared_memory`, which also
  registers the name with the resource tracker of its process tree: if the creator is killed,
  the tracker unlinks the segment when that tree exits. `close()` on the creator's handle
  unlinks the name first, then unmaps.
- An attacher only maps the segment. It does not register the name with a resource tracker:
  on Python < 3.13 `SharedMemory(name)` would, and the tracker would then unlink the creator's
  segment (with a "leaked shared_memory" warning) when the attacher's tree exits, or forget the
  creator's registration when the attacher unregisters. `close()` on an attacher only unmaps.
- A supervisor whose creator died can remove the name with `unlink(name)`.
"""

from __future__ import annotations

import mmap
import os
import sys
from multiprocessing import shared_memory

from ..errors import RingError

PREFIX = "basis-"
SHM_DIR = "/dev/shm"


def full_name(name: str) -> str:
    """`name` with the PREFIX added when it is missing."""
    if not name or "/" in name:
        raise RingError(f"bad ring name {name!r}: must be non-empty and contain no '/'")
    return name if name.startswith(PREFIX) else PREFIX + name


class Segment:
    """One mapping of a named segment. `buf` is a writable memoryview of its bytes; once the
    segment is closed it is a released view (any use raises ValueError)."""

    def __init__(self, name: str, buf: memoryview, owner: bool, closer):
        self.name = name
        self.buf = buf
        self.owner = owner
        self._closer = closer

    @classmethod
    def create(cls, name: str, size: int) -> Segment:
        name = full_name(name)
        try:
            shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        except FileExistsError:
            raise RingError(
                f"ring segment {name!r} already exists (another ring uses this name, "
                f"or a dead creator left it: basis_core.rings.unlink({name!r}))"
            ) from None
        buf = shm.buf
        assert buf is not None  # a SharedMemory is mapped until it is closed
        return cls(name, buf, True, shm)

    @classmethod
    def attach(cls, name: str) -> Segment:
        name = full_name(name)
        try:
            if sys.version_info >= (3, 13):
                shm = shared_memory.SharedMemory(name=name, track=False)
                buf = shm.buf
                assert buf is not None  # a SharedMemory is mapped until it is closed
                return cls(name, buf, False, shm)
            import _posixshmem  # what multiprocessing.shared_memory itself uses on POSIX

            fd = _posixshmem.shm_open("/" + name, os.O_RDWR, mode=0o600)
        except FileNotFoundError:
            raise RingError(
                f"no ring segment named {name!r} (not created yet, or its creator closed it)"
            ) from None
        except PermissionError:
            raise RingError(f"ring segment {name!r} belongs to another user") from None
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                raise RingError(f"ring segment {name!r} is empty: not a basis ring")
            mm = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        return cls(name, memoryview(mm), False, mm)

    def close(self) -> None:
        """Unlink (creator only), then unmap. Raises BufferError when numpy views of `buf` are
        still alive; the name is gone by then, so nothing leaks once those views are dropped."""
        if self._closer is None:
            return
        closer = self._closer
        if self.owner:
            try:
                closer.unlink()
            except FileNotFoundError:
                pass
            self.owner = False
        try:
            if isinstance(closer, shared_memory.SharedMemory):
                closer.close()  # releases its `buf`, which is ours too
            else:
                self.buf.release()
                closer.close()
        except BufferError:
            raise RingError(
                f"segment {self.name!r} cannot be unmapped: numpy views of it are still "
                f"alive (drop them first; the name is already unlinked)"
            ) from None
        self._closer = None

    @property
    def closed(self) -> bool:
        return self._closer is None


def unlink(name: str) -> bool:
    """Remove the named segment (for a supervisor whose creator died). True if it existed."""
    name = full_name(name)
    try:
        shm = shared_memory.SharedMemory(name=name)
    except FileNotFoundError:
        return False
    shm.close()
    shm.unlink()  # also drops the tracker registration made by the attach above
    return True


def leftovers(prefix: str = PREFIX) -> list[str]:
    """Names of segments in /dev/shm that start with `prefix` (empty where /dev/shm is absent)."""
    try:
        return sorted(n for n in os.listdir(SHM_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []
