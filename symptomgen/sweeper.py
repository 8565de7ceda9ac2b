"""The sweeper: ``RunStore.sweep`` now, then hourly, in a daemon thread (once per runs folder and process).

The disk's rules (limits, deleting, what a sweep removes) are ``RunStore``'s; this module only keeps the sweep
going on a server.
"""

from __future__ import annotations

import logging
import threading
import time

from .store import SWEEP_AGE_S, RunStore

log = logging.getLogger(__name__)


_sweepers: set[str] = set()
_sweepers_lock = threading.Lock()


def start_sweeper(store: RunStore, interval_s: float = SWEEP_AGE_S) -> bool:
    """Sweep now, then every ``interval_s`` in a daemon thread (once per runs folder and process); True when
    started."""
    key = str(store.root.resolve())
    with _sweepers_lock:
        if key in _sweepers:
            return False
        _sweepers.add(key)

    def loop() -> None:
        while True:
            try:
                gone = store.sweep()
                if gone:
                    log.info("swept %d leftover file(s): %s", len(gone), ", ".join(gone[:20]))
            except Exception:  # a sweep must never take the server down; try again next time
                log.exception("sweeping the runs and download folders failed")
            time.sleep(interval_s)

    threading.Thread(target=loop, daemon=True, name="symptomgen-sweeper").start()
    return True
