"""A demo design without therapists: the simulated trial with no therapist level, exported without a therapist column.

Some studies record no therapist (a single-clinician study, a self-help arm, a trial that keeps
none). This demo (``data/raw/demo_notherapist/``, config ``config/demo_notherapist.yaml``) is the
data-generating model of :mod:`alliance.simulate` with the therapist level switched off: no
therapist random effects on the alliance or the symptoms (``alliance_therapist_sd`` and
``outcome_therapist_sd`` 0) and the same between-patient effect of the stable alliance at every
level (``therapist_between_effect`` = ``patient_between_effect``). The simulator still groups
patients in units that deliver one therapy (it needs them to assign therapies); the export drops
that column, so the workflow sees patients and sessions only. The truth is written to TRUTH.yaml
as for the other demos; its therapist-level entries describe those unobserved units and are not
targets of any model of the run.

Regenerate::

    python -m alliance.simulate_notherapist --out data/raw/demo_notherapist
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pandas as pd

from alliance.simulate import TrialDesign, simulate_trial, write_truth
from alliance.simulate_export import write_csv

__all__ = ["NOTHERAPIST_SEED", "NOTHERAPIST_DESIGN", "notherapist_tables", "write_notherapist_trial"]

NOTHERAPIST_SEED = 20261201
#: small (120 patients), clean (no faults: the demo is about the design, not the export), no therapist level
NOTHERAPIST_DESIGN = replace(
    TrialDesign(n_therapists=20, patients_per_therapist=6, add_mess=False),
    alliance_therapist_sd=0.0,
    outcome_therapist_sd=0.0,
    therapist_between_effect=TrialDesign.patient_between_effect,
)


def notherapist_tables(
    design: TrialDesign = NOTHERAPIST_DESIGN, seed: int = NOTHERAPIST_SEED
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The simulated trial without its therapist column: (sessions, patients, truth).

    >>> sessions, patients, truth = notherapist_tables()
    >>> "therapist" in sessions.columns, truth["sample"]["patients"], truth["design"]["outcome_therapist_sd"]
    (False, 120, 0.0)
    """
    sessions, patients, truth = simulate_trial(design, seed)
    truth["sample"].pop("therapists")
    truth["design_note"] = (
        "no therapist level: the export has no therapist column; the simulator's grouping units (one therapy "
        "each, no random effects) are not observed, and the therapist-level entries of this file describe them only"
    )
    return sessions.drop(columns=["therapist"]), patients, truth


def write_notherapist_trial(
    outdir: Path | str, seed: int = NOTHERAPIST_SEED, design: TrialDesign = NOTHERAPIST_DESIGN
) -> dict[str, str]:
    """Write ``sessions.csv``, ``patients.csv`` and ``TRUTH.yaml`` of :func:`notherapist_tables`;
    returns the SHA-256 of each file."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    sessions, patients, truth = notherapist_tables(design, seed)
    write_csv(sessions, outdir / "sessions.csv")
    write_csv(patients, outdir / "patients.csv")
    header = (
        "# Known truth of the simulated demo trial without therapists (alliance.simulate_notherapist).\n"
        "# Regenerate: python -m alliance.simulate_notherapist --out data/raw/demo_notherapist\n"
    )
    return write_truth(outdir, header, truth, ("sessions.csv", "patients.csv"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/raw/demo_notherapist")
    parser.add_argument("--seed", type=int, default=NOTHERAPIST_SEED)
    args = parser.parse_args(argv)
    for name, digest in write_notherapist_trial(args.out, args.seed).items():
        print(f"{digest}  {Path(args.out) / name}")


if __name__ == "__main__":
    main()
