"""WASI preview1 constants: errno values, rights, flags and file types.

Numbers follow the `wasi_snapshot_preview1` witx definitions
(WebAssembly/WASI, phases/snapshot/witx/typenames.witx). `wasi_unstable`
shares them except where `preview1.py` notes a layout difference.
"""

from __future__ import annotations

import enum
import errno as host_errno


class Errno(enum.IntEnum):
    """WASI error numbers, in witx order."""

    SUCCESS = 0
    TOOBIG = 1
    ACCES = 2
    ADDRINUSE = 3
    ADDRNOTAVAIL = 4
    AFNOSUPPORT = 5
    AGAIN = 6
    ALREADY = 7
    BADF = 8
    BADMSG = 9
    BUSY = 10
    CANCELED = 11
    CHILD = 12
    CONNABORTED = 13
    CONNREFUSED = 14
    CONNRESET = 15
    DEADLK = 16
    DESTADDRREQ = 17
    DOM = 18
    DQUOT = 19
    EXIST = 20
    FAULT = 21
    FBIG = 22
    HOSTUNREACH = 23
    IDRM = 24
    ILSEQ = 25
    INPROGRESS = 26
    INTR = 27
    INVAL = 28
    IO = 29
    ISCONN = 30
    ISDIR = 31
    LOOP = 32
    MFILE = 33
    MLINK = 34
    MSGSIZE = 35
    MULTIHOP = 36
    NAMETOOLONG = 37
    NETDOWN = 38
    NETRESET = 39
    NETUNREACH = 40
    NFILE = 41
    NOBUFS = 42
    NODEV = 43
    NOENT = 44
    NOEXEC = 45
    NOLCK = 46
    NOLINK = 47
    NOMEM = 48
    NOMSG = 49
    NOPROTOOPT = 50
    NOSPC = 51
    NOSYS = 52
    NOTCONN = 53
    NOTDIR = 54
    NOTEMPTY = 55
    NOTRECOVERABLE = 56
    NOTSOCK = 57
    NOTSUP = 58
    NOTTY = 59
    NXIO = 60
    OVERFLOW = 61
    OWNERDEAD = 62
    PERM = 63
    PIPE = 64
    PROTO = 65
    PROTONOSUPPORT = 66
    PROTOTYPE = 67
    RANGE = 68
    ROFS = 69
    SPIPE = 70
    SRCH = 71
    STALE = 72
    TIMEDOUT = 73
    TXTBSY = 74
    XDEV = 75
    NOTCAPABLE = 76


class WasiError(Exception):
    """An operation that fails with a WASI errno; host functions return `errno`.

    This never leaves the WASI layer: the host function catches it and
    returns the number to the guest.
    """

    def __init__(self, errno: Errno, detail: str = "") -> None:
        self.errno = errno
        super().__init__(f"{errno.name.lower()}{f' ({detail})' if detail else ''}")


# Host errno -> WASI errno, matched by name ("E" + member name).
_FROM_HOST: dict[int, Errno] = {}
for _member in Errno:
    _code = getattr(host_errno, "E" + _member.name, None)
    if _code is not None:
        _FROM_HOST.setdefault(_code, _member)
_FROM_HOST[host_errno.E2BIG] = Errno.TOOBIG
_FROM_HOST[host_errno.EOPNOTSUPP] = Errno.NOTSUP
_FROM_HOST[host_errno.EWOULDBLOCK] = Errno.AGAIN


def errno_from_os(exc: OSError) -> Errno:
    """Map a host OSError to the WASI errno; unknown host codes become IO."""
    if exc.errno is None:
        return Errno.IO
    return _FROM_HOST.get(exc.errno, Errno.IO)


class Filetype(enum.IntEnum):
    UNKNOWN = 0
    BLOCK_DEVICE = 1
    CHARACTER_DEVICE = 2
    DIRECTORY = 3
    REGULAR_FILE = 4
    SOCKET_DGRAM = 5
    SOCKET_STREAM = 6
    SYMBOLIC_LINK = 7


# fdflags
FDFLAG_APPEND = 1
FDFLAG_DSYNC = 2
FDFLAG_NONBLOCK = 4
FDFLAG_RSYNC = 8
FDFLAG_SYNC = 16
FDFLAGS_ALL = 31

# oflags
OFLAG_CREAT = 1
OFLAG_DIRECTORY = 2
OFLAG_EXCL = 4
OFLAG_TRUNC = 8
OFLAGS_ALL = 15

# lookupflags
LOOKUP_SYMLINK_FOLLOW = 1

# fstflags
FST_ATIM = 1
FST_ATIM_NOW = 2
FST_MTIM = 4
FST_MTIM_NOW = 8

# sdflags and riflags/roflags
SHUT_RD = 1
SHUT_WR = 2
RIFLAG_RECV_PEEK = 1
RIFLAG_RECV_WAITALL = 2

# eventtype, subclockflags, eventrwflags
EVENT_CLOCK = 0
EVENT_FD_READ = 1
EVENT_FD_WRITE = 2
SUBCLOCK_ABSTIME = 1
EVENTRW_HANGUP = 1

# clockid
CLOCK_REALTIME = 0
CLOCK_MONOTONIC = 1
CLOCK_PROCESS_CPUTIME = 2
CLOCK_THREAD_CPUTIME = 3


class Rights(enum.IntFlag):
    FD_DATASYNC = 1 << 0
    FD_READ = 1 << 1
    FD_SEEK = 1 << 2
    FD_FDSTAT_SET_FLAGS = 1 << 3
    FD_SYNC = 1 << 4
    FD_TELL = 1 << 5
    FD_WRITE = 1 << 6
    FD_ADVISE = 1 << 7
    FD_ALLOCATE = 1 << 8
    PATH_CREATE_DIRECTORY = 1 << 9
    PATH_CREATE_FILE = 1 << 10
    PATH_LINK_SOURCE = 1 << 11
    PATH_LINK_TARGET = 1 << 12
    PATH_OPEN = 1 << 13
    FD_READDIR = 1 << 14
    PATH_READLINK = 1 << 15
    PATH_RENAME_SOURCE = 1 << 16
    PATH_RENAME_TARGET = 1 << 17
    PATH_FILESTAT_GET = 1 << 18
    PATH_FILESTAT_SET_SIZE = 1 << 19
    PATH_FILESTAT_SET_TIMES = 1 << 20
    FD_FILESTAT_GET = 1 << 21
    FD_FILESTAT_SET_SIZE = 1 << 22
    FD_FILESTAT_SET_TIMES = 1 << 23
    PATH_SYMLINK = 1 << 24
    PATH_REMOVE_DIRECTORY = 1 << 25
    PATH_UNLINK_FILE = 1 << 26
    POLL_FD_READWRITE = 1 << 27
    SOCK_SHUTDOWN = 1 << 28
    SOCK_ACCEPT = 1 << 29


RIGHTS_ALL = (1 << 30) - 1

# Rights that modify the file system; a read-only preopen never grants them.
RIGHTS_WRITE = (
    Rights.FD_DATASYNC | Rights.FD_WRITE | Rights.FD_ALLOCATE | Rights.FD_SYNC
    | Rights.PATH_CREATE_DIRECTORY | Rights.PATH_CREATE_FILE | Rights.PATH_LINK_SOURCE
    | Rights.PATH_LINK_TARGET | Rights.PATH_RENAME_SOURCE | Rights.PATH_RENAME_TARGET
    | Rights.PATH_FILESTAT_SET_SIZE | Rights.PATH_FILESTAT_SET_TIMES
    | Rights.FD_FILESTAT_SET_SIZE | Rights.FD_FILESTAT_SET_TIMES | Rights.PATH_SYMLINK
    | Rights.PATH_REMOVE_DIRECTORY | Rights.PATH_UNLINK_FILE | Rights.FD_FDSTAT_SET_FLAGS
)

RIGHTS_FILE = (
    Rights.FD_DATASYNC | Rights.FD_READ | Rights.FD_SEEK | Rights.FD_FDSTAT_SET_FLAGS
    | Rights.FD_SYNC | Rights.FD_TELL | Rights.FD_WRITE | Rights.FD_ADVISE
    | Rights.FD_ALLOCATE | Rights.FD_FILESTAT_GET | Rights.FD_FILESTAT_SET_SIZE
    | Rights.FD_FILESTAT_SET_TIMES | Rights.POLL_FD_READWRITE
)

RIGHTS_DIRECTORY = (
    Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_SYNC | Rights.FD_ADVISE
    | Rights.PATH_CREATE_DIRECTORY | Rights.PATH_CREATE_FILE | Rights.PATH_LINK_SOURCE
    | Rights.PATH_LINK_TARGET | Rights.PATH_OPEN | Rights.FD_READDIR
    | Rights.PATH_READLINK | Rights.PATH_RENAME_SOURCE | Rights.PATH_RENAME_TARGET
    | Rights.PATH_FILESTAT_GET | Rights.PATH_FILESTAT_SET_SIZE
    | Rights.PATH_FILESTAT_SET_TIMES | Rights.FD_FILESTAT_GET
    | Rights.FD_FILESTAT_SET_TIMES | Rights.PATH_SYMLINK | Rights.PATH_REMOVE_DIRECTORY
    | Rights.PATH_UNLINK_FILE
)

# Rights of stdin, stdout and stderr (stdin drops FD_WRITE, the others FD_READ).
# They never include FD_SEEK or FD_TELL, which wasi-libc's isatty() requires
# to be absent, so the reported filetype alone decides whether a stream is a terminal.
RIGHTS_STDIO = (
    Rights.FD_READ | Rights.FD_FDSTAT_SET_FLAGS | Rights.FD_WRITE
    | Rights.FD_FILESTAT_GET | Rights.POLL_FD_READWRITE
)

RIGHTS_SOCKET = (
    Rights.FD_READ | Rights.FD_WRITE | Rights.FD_FDSTAT_SET_FLAGS
    | Rights.FD_FILESTAT_GET | Rights.POLL_FD_READWRITE | Rights.SOCK_SHUTDOWN
    | Rights.SOCK_ACCEPT
)
