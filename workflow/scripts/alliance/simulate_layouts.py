"""Demo export layouts: the simulated trial (alliance.simulate) laid out the way other labs export it.

"Design columns only in the client table" (``data/raw/demo_clientdesign/``, config
``config/demo_clientdesign.yaml``): many routine-monitoring systems store a client's therapy type,
diagnosis and centre once, in the client table, and the session table holds only the client,
therapist, session and the questionnaires. :func:`clientdesign_tables` moves ``therapy``,
``condition`` and ``site`` of the simulated trial into the client table, in the lab's own
spellings (therapy "kognitive Verhaltenstherapie", ICD-10 codes for the diagnosis), so that the
pipeline must take them from there (``dataset.patient_columns``) and map them with
``dataset.labels``. The trial itself, and so its truth (TRUTH.yaml), is the simulator's.

Regenerate::

    python -m alliance.simulate_layouts --out data/raw/demo_clientdesign
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from alliance.simulate import TrialDesign, simulate_trial, write_truth
from alliance.simulate_export import write_csv

__all__ = [
    "CLIENTDESIGN_SEED",
    "CLIENTDESIGN_DESIGN",
    "CLIENT_THERAPY",
    "CLIENT_DIAGNOSIS",
    "clientdesign_tables",
    "write_clientdesign_trial",
]

CLIENTDESIGN_SEED = 20261202
#: small (12 therapists x 8 patients) and clean: the demo is about the layout, not the faults
CLIENTDESIGN_DESIGN = TrialDesign(n_therapists=12, patients_per_therapist=8, add_mess=False)
#: the client table's spellings of the canonical therapy types and conditions
CLIENT_THERAPY = {"CBT": "kognitive Verhaltenstherapie", "PDT": "psychodynamisch", "IPT": "interpersonell"}
CLIENT_DIAGNOSIS = {"depression": "F32", "anxiety": "F41.1"}


def clientdesign_tables(
    design: TrialDesign = CLIENTDESIGN_DESIGN, seed: int = CLIENTDESIGN_SEED
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The simulated trial with its design columns in the client table: (sessions, clients, truth).

    The sessions keep ``patient``, ``therapist``, ``session`` and the items; the clients get
    ``Treatment``, ``Diagnosis`` and ``Centre`` (each patient's, in the lab's spellings) beside
    their covariates.

    >>> sessions, clients, truth = clientdesign_tables()
    >>> {"therapy", "condition", "site"} & set(sessions.columns), list(clients.columns[:4])
    (set(), ['patient', 'Treatment', 'Diagnosis', 'Centre'])
    >>> truth["sample"]["patients"], truth["layout"]["design_columns"]
    (96, 'only in clients.csv: Treatment, Diagnosis, Centre')
    """
    sessions, patients, truth = simulate_trial(design, seed)
    first = sessions.drop_duplicates("patient").set_index("patient")
    one_value = sessions.groupby("patient")[["therapy", "condition", "site"]].nunique().le(1).all().all()
    if not one_value:
        raise ValueError("a simulated patient has two therapies, conditions or sites; the layout needs one")
    design_columns = pd.DataFrame(
        {
            "patient": patients["patient"],
            "Treatment": patients["patient"].map(first["therapy"]).map(CLIENT_THERAPY),
            "Diagnosis": patients["patient"].map(first["condition"]).map(CLIENT_DIAGNOSIS),
            "Centre": patients["patient"].map(first["site"]),
        }
    )
    clients = design_columns.merge(patients, on="patient", how="left", validate="one_to_one")
    truth = {
        **truth,
        "layout": {
            "design_columns": "only in clients.csv: Treatment, Diagnosis, Centre",
            "labels": {"therapy": dict(CLIENT_THERAPY), "condition": dict(CLIENT_DIAGNOSIS)},
        },
    }
    return sessions.drop(columns=["therapy", "condition", "site"]), clients, truth


def write_clientdesign_trial(
    outdir: Path | str, design: TrialDesign = CLIENTDESIGN_DESIGN, seed: int = CLIENTDESIGN_SEED
) -> dict[str, str]:
    """Write ``sessions.csv``, ``clients.csv`` and ``TRUTH.yaml``; returns the SHA-256 of each."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    sessions, clients, truth = clientdesign_tables(design, seed)
    write_csv(sessions, outdir / "sessions.csv")
    write_csv(clients.astype({c: "str" for c in ("Treatment", "Diagnosis", "Centre")}), outdir / "clients.csv")
    header = (
        "# Known truth of the simulated demo trial whose design columns are only in the client table\n"
        "# (alliance.simulate_layouts.write_clientdesign_trial). Regenerate:\n"
        "#   python -m alliance.simulate_layouts --out data/raw/demo_clientdesign\n"
    )
    return write_truth(outdir, header, truth, ("sessions.csv", "clients.csv"))


def main(argv: list[str] | None = None) -> None:
    """``python -m alliance.simulate_layouts --out DIR``: write the demo, print each file's SHA-256."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/raw/demo_clientdesign")
    parser.add_argument("--seed", type=int, default=CLIENTDESIGN_SEED)
    args = parser.parse_args(argv)
    for name, digest in write_clientdesign_trial(args.out, seed=args.seed).items():
        print(f"{digest}  {Path(args.out) / name}")


if __name__ == "__main__":
    main()
