"""Loss on the target only vs on the whole text (the seed notebook's choice): now part of the recipe study.

The first version of this script trained one seed per mode, and its verdict (bench/LOSS_MODE.md) did not hold on
other seeds.  The comparison now runs inside ``bench/recipes.py`` over several seeds at equal compute, scoring
taught and unseen rows apart; this script runs just those two recipes of it (same options as ``recipes.py``;
the table goes to bench/LOSS_MODE.md unless ``--out`` says otherwise).

    flock /tmp/symptomgen-cpu.lock python bench/loss_mode.py --seeds 3 7 11 42 --epochs 20
"""

from __future__ import annotations

import sys
from pathlib import Path

import recipes

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--recipes" not in args:
        args += ["--recipes", recipes.BASELINE, "loss on target"]
    if "--out" not in args:
        args += ["--out", str(Path(__file__).with_name("LOSS_MODE.md"))]
    sys.argv = [sys.argv[0], *args]
    recipes.main()
