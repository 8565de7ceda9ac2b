"""CPU training speed-ups that need no extra package (measured in ``bench/RESULTS.md``).

* ``native_bf16``: whether the CPU multiplies bfloat16 in hardware (AVX512-BF16 or
  AMX).  There, bf16 autocast roughly doubles the matmul rate with fp32 master
  weights and optimizer; elsewhere bf16 is emulated and slower, so it stays off.
* ``keep_freed_memory``: glibc hands every allocation over 32 MB straight back to
  the OS when freed, so each training step re-faults the same ~0.7 GB of fresh,
  zero-filled pages (GPT-2's 50257×768 tied-embedding gradient alone is 154 MB).
  Keeping freed memory in the heap removes those page faults (~30% faster steps
  here) but the heap fragments: peak RSS grows from ~2.5 GB to ~4.6 GB for a
  distilgpt2-sized model.  So it is opt-in: ``SYMPTOMGEN_KEEP_FREED_MEMORY=1``.

* ``preload_env``: glibc's allocator maps and unmaps those big blocks every step;
  tcmalloc keeps them.  With it preloaded, distilgpt2-shaped training steps ran
  1.4× faster here in 3 of 3 interleaved pairs (jemalloc: 0.9×; bench/RESULTS.md).
  A library must be preloaded before the process starts, so ``python -m
  symptomgen`` re-executes itself once with it, and the app sets it for the
  training processes it spawns.  Only where Debian's ``libtcmalloc-minimal4`` (or
  another build) is installed; ``SYMPTOMGEN_TCMALLOC=0`` turns it off.

``SYMPTOMGEN_CPU_BF16=0`` turns bf16 autocast off on CPUs that have it.  So does a cap on the instruction sets
torch may use (``isa_cap``: ``ONEDNN_MAX_CPU_ISA`` below AVX512-BF16, or ``ATEN_CPU_CAPABILITY`` below AVX512),
which is also how this CPU stands in for an AVX2-only laptop in ``bench/`` (bf16 there would be emulated).
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import sys
from collections.abc import Mapping

from .settings import current

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters (malloc.h)
TCMALLOC_GLOBS = ("/usr/lib/*/libtcmalloc_minimal.so.4", "/usr/lib/*/libtcmalloc.so.4", "/usr/lib64/libtcmalloc*.so.4",
                  "/usr/local/lib/libtcmalloc*.so.4")
"""Where tcmalloc is looked for (Debian/Ubuntu multiarch, Fedora, a local build)."""


@functools.lru_cache(maxsize=1)
def tcmalloc_path() -> str | None:
    """An installed tcmalloc shared library (the minimal build first), or None (also off Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    for pattern in TCMALLOC_GLOBS:
        for path in sorted(glob.glob(pattern)):
            if os.path.isfile(path):
                return path
    return None


def preload_env(env: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """``env`` (default ``os.environ``) with tcmalloc added to ``LD_PRELOAD``, or None when nothing changes: it
    is off (``SYMPTOMGEN_TCMALLOC=0``), not installed, or already preloaded."""
    env = dict(os.environ if env is None else env)
    path = tcmalloc_path()
    if path is None or not current().tcmalloc or "tcmalloc" in env.get("LD_PRELOAD", ""):
        return None
    env["LD_PRELOAD"] = " ".join(p for p in (path, env.get("LD_PRELOAD", "")) if p)
    return env


@functools.lru_cache(maxsize=1)
def bf16_flags() -> tuple[str, ...]:
    """This CPU's bf16 dot-product instruction flags (``avx512_bf16``, ``amx_bf16``) from Linux ``/proc/cpuinfo``;
    empty elsewhere or when it has none."""
    if not sys.platform.startswith("linux"):
        return ()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return tuple(sorted({"avx512_bf16", "amx_bf16"} & set(line.split(":", 1)[1].split())))
    except OSError:
        pass
    return ()


ONEDNN_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
                    "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2",
                    "ALL", "DEFAULT")
"""``ONEDNN_MAX_CPU_ISA`` values that still allow oneDNN's bf16 dot products (which run torch's bf16 matmuls)."""


def isa_cap(env: Mapping[str, str] | None = None) -> str | None:
    """The setting that keeps torch below this CPU's bf16 instructions, in words (``"ONEDNN_MAX_CPU_ISA=AVX2"``), or
    None.  oneDNN runs the bf16 matmuls, so a cap below AVX512_CORE_BF16 there makes them emulated; ATen's own
    kernels (``ATEN_CPU_CAPABILITY``) below AVX512 lose the bf16 conversions."""
    env = os.environ if env is None else env
    onednn = env.get("ONEDNN_MAX_CPU_ISA", env.get("DNNL_MAX_CPU_ISA", "")).strip().upper()
    if onednn and onednn not in ONEDNN_BF16_ISAS:
        return f"ONEDNN_MAX_CPU_ISA={onednn}"
    aten = env.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    if aten and not aten.startswith("avx512"):
        return f"ATEN_CPU_CAPABILITY={aten}"
    return None


@functools.lru_cache(maxsize=1)
def native_bf16() -> bool:
    """True when this CPU has bf16 dot-product instructions (``bf16_flags``), torch may use them (no ``isa_cap``)
    and ``SYMPTOMGEN_CPU_BF16`` is not 0."""
    return current().cpu_bf16 and bool(bf16_flags()) and isa_cap() is None


@functools.lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """If opted in, make glibc keep freed memory for reuse (no per-step page faults); True if applied."""
    if not current().keep_freed_memory or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # Serve big blocks from the heap rather than mmap, and never shrink the heap below 2 GB of free top.
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
