"""``python -m symptomgen``: see ``symptomgen.cli``.

Run as a program, it first re-executes itself once with tcmalloc preloaded where it is installed
(``cputune.preload_env``: training steps 1.4× faster); ``cli.main`` called from Python is left as it is."""

import os
import sys

from .cli import main

if __name__ == "__main__":
    from .cputune import preload_env
    from .errors import UserError

    try:
        env = preload_env()
    except UserError:  # a malformed SYMPTOMGEN_* variable: main() says so in one line
        env = None
    if env is not None:  # the same process (pid, pipes, signals) from here on, with the allocator loaded
        os.execve(sys.executable, [sys.executable, "-m", "symptomgen", *sys.argv[1:]], env)
    sys.exit(main())
