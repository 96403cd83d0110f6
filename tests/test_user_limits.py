"""Per-user kernel limits are not shared between episodes: each run has a uid of its own.

The kernel counts inotify instances, POSIX message queue bytes, queued signals and pipe
buffer pages per user, whatever namespaces the user's processes live in. A host of one
cluster exhausts each of them; a host of a concurrent cluster still gets every one
(each run runs as its own uid), while a second host of the exhausting cluster, which
shares its uid though not its PID, IPC, network or mount namespace, is starved: the
positive control, which is how every episode stood when all ran as ``nobody``. Keyrings,
the last per-user resource, are refused in every sandbox (the seccomp filter: uids come
back with run ids, and keys outlive their user's processes), so there is no keyring
quota to exhaust; the probe shows ``add_key`` refused everywhere.
"""

from __future__ import annotations

import json
import time

from conftest import needs_root

from infragym.sandbox import HOST_PYTHON, Cluster, Host
from infragym.sandbox._identity import ID_BASE, ID_COUNT

pytestmark = needs_root

_COMMON = r"""
import ctypes, errno, fcntl, json, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032

class MqAttr(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_long), ("maxmsg", ctypes.c_long),
                ("msgsize", ctypes.c_long), ("curmsgs", ctypes.c_long),
                ("pad", ctypes.c_long * 4)]

libc.mq_open.restype = ctypes.c_int
libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(MqAttr)]

def mq(name, maxmsg, msgsize):
    attr = MqAttr(0, maxmsg, msgsize, 0)
    fd = libc.mq_open(name.encode(), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600, attr)
    return fd if fd >= 0 else -ctypes.get_errno()

def inotify():
    fd = libc.inotify_init1(0)
    return fd if fd >= 0 else -ctypes.get_errno()

libc.sigqueue.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]

def rt_signal():
    # sigqueue, not kill: the kernel drops a kill's real-time signal silently when the
    # queue is full, and refuses a sigqueue's with EAGAIN
    if libc.sigqueue(os.getpid(), signal.SIGRTMIN, None) == 0:
        return 0
    return -ctypes.get_errno()

signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
"""

# exhausts each limit, says how far it got, and holds everything until killed
HOG = (
    _COMMON
    + r"""
got = {}
n = 0
while (fd := inotify()) >= 0:
    n += 1
got["inotify"] = [n, errno.errorcode[-fd]]
n = 0
for maxmsg, msgsize in ((10, 8192), (1, 1024), (1, 1)):
    while (fd := mq(f"/hog{n}", maxmsg, msgsize)) >= 0:
        n += 1
got["mqueue"] = [n, errno.errorcode[-fd]]
n = 0
while (r := rt_signal()) == 0:
    n += 1
got["sigpending"] = [n, errno.errorcode[-r]]
pipes = []
while True:
    r, w = os.pipe()
    pipes.append((r, w))
    try:
        fcntl.fcntl(w, F_SETPIPE_SZ, 1 << 20)
    except OSError as e:
        got["pipe_pages"] = [len(pipes), errno.errorcode[e.errno]]
        break
got["uid"] = os.getuid()
print("HOG " + json.dumps(got), flush=True)
signal.pause()
"""
)

PROBE = (
    _COMMON
    + r"""
got = {"uid": os.getuid(), "inotify": inotify(), "mqueue": mq("/probe", 1, 1),
       "sigpending": rt_signal()}
r, w = os.pipe()
got["pipe_bytes"] = fcntl.fcntl(w, F_GETPIPE_SZ)
key = libc.syscall(248, b"user", b"probe", b"v", 1, -4)  # add_key to the thread keyring
got["add_key"] = key if key >= 0 else -ctypes.get_errno()
print(json.dumps(got))
"""
)


def probe(host: Host) -> dict[str, int]:
    r = host.run([HOST_PYTHON, "-c", PROBE], timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    return dict(json.loads(r.stdout))


def hog_report(host: Host) -> dict[str, list[object]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in host.log("hog").splitlines():
            if line.startswith("HOG "):
                return dict(json.loads(line[4:]))
        time.sleep(0.1)
    raise AssertionError(f"the hog did not report: {host.log('hog')}")


def unaffected(got: dict[str, int]) -> bool:
    return (
        got["inotify"] >= 0 and got["mqueue"] >= 0 and got["sigpending"] == 0
        and got["pipe_bytes"] == 65536
        and got["add_key"] == -1  # EPERM: keyrings are refused everywhere (seccomp)
    )  # fmt: skip


def test_one_episode_exhausting_per_user_limits_leaves_another_unaffected() -> None:
    with Cluster(2) as a, Cluster(1) as b:
        assert a.identity is not None and b.identity is not None
        assert a.identity.uid != b.identity.uid
        for ident in (a.identity, b.identity):
            assert ID_BASE <= ident.uid < ID_BASE + ID_COUNT and ident.gid == ident.uid
        hog_host, same_uid_host = a.hosts
        before = probe(same_uid_host)
        assert unaffected(before), before  # a fresh uid has everything
        hog = hog_host.spawn("hog", [HOST_PYTHON, "-c", HOG])
        got = hog_report(hog_host)
        assert got["uid"] == a.identity.uid
        # each limit was reached, not a failure of some other kind
        assert got["inotify"][1] == "EMFILE" and got["inotify"][0] >= 1, got
        assert got["mqueue"][1] == "EMFILE" and got["mqueue"][0] >= 1, got
        assert got["sigpending"][1] == "EAGAIN" and got["sigpending"][0] >= 1, got
        assert got["pipe_pages"][1] == "EPERM", got

        other = probe(b.hosts[0])
        assert other["uid"] == b.identity.uid
        assert unaffected(other), f"the other episode was starved: {other}"

        # the control: a host of the same run shares the uid, and is starved of each
        control = probe(same_uid_host)
        assert control["uid"] == a.identity.uid
        assert control["inotify"] == -24, control  # EMFILE
        assert control["mqueue"] == -24, control  # EMFILE
        assert control["sigpending"] == -11, control  # EAGAIN
        assert control["pipe_bytes"] < 65536, control  # over the soft limit: pages rationed
        assert control["add_key"] == -1, control

        hog.stop()
        assert unaffected(probe(same_uid_host)), "the limits were not given back"


def test_concurrent_runs_get_distinct_ids_and_a_named_user() -> None:
    with Cluster(1) as a, Cluster(1) as b:
        outs = []
        for c in (a, b):
            r = c.hosts[0].run(["sh", "-c", "id -un; id -gn; id -u; getent passwd $(id -u)"])
            outs.append(r.stdout.decode().split())
        assert outs[0][2] != outs[1][2], outs
        for c, o in zip((a, b), outs, strict=True):
            assert c.identity is not None
            assert o[:3] == ["sandbox", "sandbox", str(c.identity.uid)], o
            assert o[3] == f"sandbox:x:{c.identity.uid}:{c.identity.gid}:sandbox:/tmp:/bin/sh"
