"""The third demo: the simulated trial exported from SPSS, byte for byte.

A small trial of :mod:`alliance.simulate` (10 therapists x 8 patients, up to 10 sessions) as a lab
working in SPSS keeps it: ``sessions.sav`` and ``patients.sav``, integer ids (``client_no`` 1001...,
``clinician`` 11...), therapy, diagnosis, clinic, gender and end status held as integer codes with
SPSS value labels (1 = "Cognitive-behavioural therapy"), items as numbers with labelled scale
points (WAI 1 = "seldom" ... 5 = "always") and missing items as system-missing, and column names
of its own (``visit``, ``arm``, ``dx``, ``WAI1``..``WAI12``, ``PHQ_1``..``PHQ_9``, ``GAD_1``..).

pyreadstat's writer stamps the file header with the time of writing (creation date, bytes 92-100,
and time, bytes 101-108, of the .sav header record); :func:`write_sav` overwrites them with a
fixed stamp so that a rerun gives the same bytes.

Regenerate with ``python -m alliance.simulate_spss --out data/raw/demo_spss``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from alliance.simulate import TrialDesign, simulate_trial, write_truth
from alliance.simulate_export import GAD7_ITEMS, PHQ9_ITEMS, WAI_ITEMS

__all__ = [
    "SPSS_SEED",
    "SPSS_DESIGN",
    "SPSS_THERAPY",
    "SPSS_DIAGNOSIS",
    "spss_tables",
    "write_sav",
    "write_spss_trial",
]

SPSS_SEED = 20261127
#: The third demo's design: the demo's data-generating model, a small trial, no faults.
SPSS_DESIGN = TrialDesign(n_therapists=10, patients_per_therapist=8, max_sessions=10, add_mess=False)
#: value labels of the coded columns: canonical label -> (code, the lab's label)
SPSS_THERAPY = {
    "CBT": (1, "Cognitive-behavioural therapy"),
    "PDT": (2, "Psychodynamic therapy"),
    "IPT": (3, "Interpersonal psychotherapy"),
}
SPSS_DIAGNOSIS = {"depression": (1, "Major depressive disorder"), "anxiety": (2, "Generalised anxiety disorder")}
SPSS_CLINIC = {"S1": (1, "Clinic North"), "S2": (2, "Clinic South"), "S3": (3, "Clinic East"), "S4": (4, "Clinic West")}
SPSS_GENDER = {"female": (1, "female"), "male": (2, "male")}
SPSS_STATUS = {"completed": (1, "completed"), "dropout": (2, "dropout")}
WAI_POINTS = {1.0: "seldom", 2.0: "sometimes", 3.0: "fairly often", 4.0: "very often", 5.0: "always"}
#: the fixed creation date and time written into the .sav header (9 + 8 bytes)
SAV_STAMP = b"27 Nov 2600:00:00"
SAV_STAMP_OFFSET = 92


def _codes(values: pd.Series, coding: dict[str, tuple[int, str]]) -> np.ndarray:
    """The integer codes of canonical values (a value without a code is a bug of the coding)."""
    return values.map({k: code for k, (code, _) in coding.items()}).astype("int64").to_numpy()


def _value_labels(coding: dict[str, tuple[int, str]]) -> dict[float, str]:
    """SPSS value labels of a coding: code -> the lab's label."""
    return {float(code): label for code, label in coding.values()}


def _numbers(text: pd.Series) -> np.ndarray:
    """Item text ('3', '' for missing) as float64 with NaN (system-missing)."""
    return pd.to_numeric(text.replace("", np.nan)).to_numpy(dtype="float64")


def spss_tables(design: TrialDesign = SPSS_DESIGN, seed: int = SPSS_SEED) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The simulated trial as the SPSS lab holds it: (sessions, patients, truth), every column numeric."""
    sessions, patients, truth = simulate_trial(design, seed)
    client = {p: 1000 + int(p[1:]) for p in patients["patient"]}
    export = pd.DataFrame(
        {
            "client_no": sessions["patient"].map(client).astype("int64"),
            "clinician": (10 + sessions["therapist"].str[1:].astype(int)).astype("int64"),
            "clinic": _codes(sessions["site"], SPSS_CLINIC),
            "visit": sessions["session"].astype("int64"),
            "arm": _codes(sessions["therapy"], SPSS_THERAPY),
            "dx": _codes(sessions["condition"], SPSS_DIAGNOSIS),
        }
    )
    names = [f"WAI{k}" for k in range(1, 13)] + [f"PHQ_{k}" for k in range(1, 10)] + [f"GAD_{k}" for k in range(1, 8)]
    for name, item in zip(names, WAI_ITEMS + PHQ9_ITEMS + GAD7_ITEMS):
        export[name] = _numbers(sessions[item])
    people = pd.DataFrame(
        {
            "client_no": patients["patient"].map(client).astype("int64"),
            "gender": _codes(patients["sex"], SPSS_GENDER),
            "expect": patients["expectancy"].astype("int64"),
            "status": _codes(patients["end_reason"], SPSS_STATUS),
        }
    )
    truth = {
        **truth,
        "lab_format": {
            "sessions": "sessions.sav: SPSS, integer ids; arm, dx and clinic are codes with value labels",
            "patients": "patients.sav: SPSS; gender and status (the end reason) are codes with value labels",
            "scales": "items as in the demo (WAI1-WAI12 1-5 with labelled scale points, PHQ_1-PHQ_9, GAD_1-GAD_7)",
            "value_labels": {
                "arm": {label: code for code, label in SPSS_THERAPY.values()},
                "dx": {label: code for code, label in SPSS_DIAGNOSIS.values()},
            },
        },
    }
    return export, people, truth


def write_sav(frame: pd.DataFrame, path: Path, value_labels: dict[str, dict[float, str]]) -> None:
    """Write ``frame`` as an SPSS .sav file with its value labels and a fixed header time stamp."""
    import pyreadstat  # local: only the SPSS demo needs it

    pyreadstat.write_sav(frame, str(path), variable_value_labels=value_labels)
    raw = bytearray(path.read_bytes())
    raw[SAV_STAMP_OFFSET : SAV_STAMP_OFFSET + len(SAV_STAMP)] = SAV_STAMP
    path.write_bytes(bytes(raw))


def write_spss_trial(outdir: Path | str, seed: int = SPSS_SEED, design: TrialDesign = SPSS_DESIGN) -> dict[str, str]:
    """Write the third demo (:func:`spss_tables`): ``sessions.sav``, ``patients.sav`` and ``TRUTH.yaml``.
    Returns the SHA-256 of each file."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    sessions, patients, truth = spss_tables(design, seed)
    item_labels = {f"WAI{k}": WAI_POINTS for k in range(1, 13)}
    sessions_labels = {
        "clinic": _value_labels(SPSS_CLINIC),
        "arm": _value_labels(SPSS_THERAPY),
        "dx": _value_labels(SPSS_DIAGNOSIS),
        **item_labels,
    }
    write_sav(sessions, outdir / "sessions.sav", sessions_labels)
    patients_labels = {"gender": _value_labels(SPSS_GENDER), "status": _value_labels(SPSS_STATUS)}
    write_sav(patients, outdir / "patients.sav", patients_labels)
    header = (
        "# Known truth of the third simulated demo trial, exported from SPSS\n"
        "# (alliance.simulate_spss.write_spss_trial). Regenerate:\n"
        "#   python -m alliance.simulate_spss --out data/raw/demo_spss\n"
    )
    return write_truth(outdir, header, truth, ("sessions.sav", "patients.sav"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/raw/demo_spss")
    parser.add_argument("--seed", type=int, default=SPSS_SEED)
    args = parser.parse_args(argv)
    for name, digest in write_spss_trial(args.out, args.seed).items():
        print(f"{digest}  {Path(args.out) / name}")


if __name__ == "__main__":
    main()
