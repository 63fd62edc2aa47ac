"""Model-ready data for the engine benchmarks (bench/bench_engines.py), made from the
pipeline's own simulator (alliance.simulate) without the cleaning stage.

The columns are those the model stage uses, computed as in methods.md section 4:
``symptoms`` (POMP of the condition's primary measure), ``session_c`` (session - 1),
``alliance`` (WAI-SR item mean), ``alliance_within_patient`` (session minus patient mean),
``alliance_between_patient`` (patient mean minus grand mean of patient means),
``alliance_patient_within_therapist`` (patient mean minus therapist mean of patient means),
``alliance_between_therapist`` (therapist mean minus grand mean), ``therapist``, ``patient``.
Files are cached under bench/out/data/ (git-ignored).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from alliance.simulate import GAD7_ITEMS, PHQ9_ITEMS, WAI_ITEMS, TrialDesign, simulate_trial  # noqa: E402

CACHE = ROOT / "bench" / "out" / "data"
#: rows per patient is about 11.7 with the default design, so 100 patients per therapist gives
#: ~1,170 rows per therapist: 17 / 171 / 857 therapists -> ~20k / ~200k / ~1M rows
SIZES = {"20k": 17, "200k": 171, "1M": 857}
PATIENTS_PER_THERAPIST = 100
SEED = 20261125


def model_frame(n_therapists: int, patients_per_therapist: int = PATIENTS_PER_THERAPIST, seed: int = SEED) -> pd.DataFrame:
    design = TrialDesign(n_therapists=n_therapists, patients_per_therapist=patients_per_therapist, add_mess=False)
    sessions, _, _ = simulate_trial(design, seed)
    wai = sessions[WAI_ITEMS].replace("", np.nan).astype(float)
    phq = sessions[PHQ9_ITEMS].replace("", np.nan).astype(float)
    gad = sessions[GAD7_ITEMS].replace("", np.nan).astype(float)
    depression = (sessions["condition"] == "depression").to_numpy()
    symptoms = np.where(depression, phq.mean(axis=1) * 9 / 27 * 100, gad.mean(axis=1) * 7 / 21 * 100)
    d = pd.DataFrame(
        {
            "therapist": sessions["therapist"].to_numpy(),
            "patient": sessions["patient"].to_numpy(),
            "therapy": sessions["therapy"].to_numpy(),
            "session_c": sessions["session"].astype(int).to_numpy() - 1.0,
            "alliance": wai.mean(axis=1).to_numpy(),
            "symptoms": symptoms,
        }
    )
    pm = d.groupby("patient")["alliance"].transform("mean")
    pmeans = d.groupby("patient").agg(pm=("alliance", "mean"), therapist=("therapist", "first"))
    tm = pmeans.groupby("therapist")["pm"].mean()
    grand = pmeans["pm"].mean()
    d["alliance_within_patient"] = d["alliance"] - pm
    d["alliance_between_patient"] = pm - grand
    d["alliance_patient_within_therapist"] = pm - d["therapist"].map(tm)
    d["alliance_between_therapist"] = d["therapist"].map(tm) - grand
    return d.dropna().reset_index(drop=True)


def load(size: str) -> pd.DataFrame:
    """The cached model frame of one size ("20k", "200k", "1M")."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"model_{size}.parquet"
    if not path.exists():
        model_frame(SIZES[size]).to_parquet(path, index=False)
    return pd.read_parquet(path)


if __name__ == "__main__":
    for size in sys.argv[1:] or list(SIZES):
        print(size, len(load(size)))
