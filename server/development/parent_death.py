"""Development children that die with the gateway, however it dies.

The gateway stops its Valkey server and workers itself when it is asked to
(Ctrl-C, SIGTERM, SIGHUP). A gateway that is SIGKILLed or OOM-killed cannot,
and as each child runs in a process group of its own, nothing else would:
they would keep running, and the next run would start a second Valkey on the
same data directory. On Linux the kernel can signal a child when its parent
dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere children still outlive a killed
gateway.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# SIGTERM, not SIGKILL: Valkey flushes its append-only file, and Celery's warm
# shutdown stops its pool (whose processes also die with it: billiard sets
# their PR_SET_PDEATHSIG).
DEATH_SIGNAL = signal.SIGTERM


def die_with_gateway() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child sent SIGTERM once the gateway dies; None off Linux.

    Linux sends the signal when the *thread* that forked the child ends, not
    the process: call this, and spawn the child, on the main thread, which lives
    as long as the gateway (a thread pool's thread may end any time before).
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("start development children from the main thread: they die with their thread")
    # Looked up here, in the parent: the child, between fork and exec, only calls it.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    gateway = os.getpid()

    def preexec() -> None:
        """In the child, before exec (the setting survives it): ask for the signal, then make
        sure the gateway did not die before the request, when it would never come."""
        if prctl(PR_SET_PDEATHSIG, DEATH_SIGNAL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != gateway:
            os._exit(1)

    return preexec
