"""Write the routine-monitoring-scale dataset to data/raw/scale/ (git-ignored): 1000 therapists x
100 patients, about 1.17 million session rows, same simulator and data-generating model as the
demo (alliance.simulate; known truth in TRUTH.yaml), messy like a real export.

    .venv/bin/python bench/make_scale_data.py            # ~5 s, ~0.9 GB peak
    .venv/bin/snakemake --cores 2 --configfile config/scale.yaml
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from alliance.simulate import TrialDesign, write_trial  # noqa: E402

SCALE_SEED = 20261127
SCALE_DESIGN = TrialDesign(n_therapists=1000, patients_per_therapist=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "data" / "raw" / "scale"))
    parser.add_argument("--therapists", type=int, default=SCALE_DESIGN.n_therapists)
    parser.add_argument("--patients-per-therapist", type=int, default=SCALE_DESIGN.patients_per_therapist)
    parser.add_argument("--seed", type=int, default=SCALE_SEED)
    args = parser.parse_args(argv)
    design = TrialDesign(n_therapists=args.therapists, patients_per_therapist=args.patients_per_therapist)
    start = time.perf_counter()
    digests = write_trial(args.out, design, args.seed)
    for name, digest in digests.items():
        print(f"{digest}  {Path(args.out) / name}")
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
