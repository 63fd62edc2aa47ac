"""Data for the model-stage benchmarks, made with the pipeline's own simulator (alliance.simulate).

* :func:`load` (bench/bench_engines.py): a model-ready frame without the cleaning stage.
* :func:`load_suite` (bench/bench_suite.py): the analysis and patients tables of the pipeline's
  cleaning stage (``alliance.intake.clean.clean_dataset`` with the demo config), i.e. what the fit jobs read.

The columns of :func:`load` are those the model stage uses, computed as in methods.md section 4:
``symptoms`` (POMP of the condition's primary measure), ``session_c`` (session - 1),
``alliance`` (WAI-SR item mean), ``alliance_within_patient`` (session minus patient mean),
``alliance_between_patient`` (patient mean minus grand mean of patient means),
``alliance_patient_within_therapist`` (patient mean minus therapist mean of patient means),
``alliance_between_therapist`` (therapist mean minus grand mean), ``therapist``, ``patient``.
Files are cached under bench/out/data/ (git-ignored).

    .venv/bin/python bench/model_data.py 20k 200k          # model frames
    .venv/bin/python bench/model_data.py --suite 20k       # cleaned suite tables
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from alliance.simulate import GAD7_ITEMS, PHQ9_ITEMS, WAI_ITEMS, TrialDesign, simulate_trial, write_trial  # noqa: E402

CACHE = ROOT / "bench" / "out" / "data"
#: rows per patient is about 11.7 with the default design, so 100 patients per therapist gives
#: ~1,170 rows per therapist: 17 / 171 / 857 therapists -> ~20k / ~200k / ~1M rows
SIZES = {"20k": 17, "200k": 171, "1M": 857}
PATIENTS_PER_THERAPIST = 100
SEED = 20261125


def model_frame(
    n_therapists: int, patients_per_therapist: int = PATIENTS_PER_THERAPIST, seed: int = SEED
) -> pd.DataFrame:
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


def demo_config(path: Path | str = ROOT / "config" / "config.yaml") -> dict:
    """The pipeline config the benchmarks use (the shipped demo config by default)."""
    import yaml

    return yaml.safe_load(Path(path).read_text())


def suite_dir(size: str) -> Path:
    return CACHE / f"suite_{size}"


def build_suite(size: str, seed: int = SEED, config: dict | None = None) -> dict:
    """Simulate ``size`` (TrialDesign, add_mess=False), write the lab files to a temp dir, run the
    pipeline's cleaning on them with the config's dataset/analysis/cleaning sections, and write
    ``analysis.parquet`` and ``patients.parquet`` (as rule clean_data does) plus ``meta.json``."""
    from alliance.intake.clean import clean_dataset
    from alliance.outputs import write_parquet

    config = config or demo_config()
    design = TrialDesign(n_therapists=SIZES[size], patients_per_therapist=PATIENTS_PER_THERAPIST, add_mess=False)
    out = suite_dir(size)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_suite_") as tmp:
        write_trial(tmp, design, seed=seed)
        dataset = copy.deepcopy(config["dataset"])
        dataset["name"] = f"bench_suite_{size}"
        dataset["sessions"]["path"] = str(Path(tmp) / "sessions.csv")
        dataset["patients"]["path"] = str(Path(tmp) / "patients.csv")
        t1 = time.perf_counter()
        clean = clean_dataset(dataset, config["analysis"], config.get("cleaning", {}), config.get("instruments", {}))
    t2 = time.perf_counter()
    write_parquet(clean.sessions, out / "analysis.parquet")
    write_parquet(clean.patients, out / "patients.parquet")
    meta = {
        "size": size,
        "seed": seed,
        "n_therapists": design.n_therapists,
        "patients_per_therapist": design.patients_per_therapist,
        "add_mess": design.add_mess,
        "analysis_rows": len(clean.sessions),
        "patients_rows": len(clean.patients),
        "findings": len(clean.findings),
        "simulate_s": round(t1 - t0, 2),
        "clean_s": round(t2 - t1, 2),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def suite_meta(size: str, seed: int = SEED, refresh: bool = False) -> dict:
    """The cached suite tables of ``size`` (built if missing, stale or ``refresh``); their meta.json."""
    meta_path = suite_dir(size) / "meta.json"
    if not refresh and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("seed") == seed and all(
            (suite_dir(size) / f).exists() for f in ("analysis.parquet", "patients.parquet")
        ):
            return meta
    return build_suite(size, seed)


def load_suite(size: str, model: dict) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The cached analysis and patients tables of one size, read as rules fit_model and
    fit_stratum read them for ``model`` (``alliance.models.data.load_model_tables``: only the model's
    columns, or the patients table alone for a patient-level model)."""
    from alliance.models.data import load_model_tables

    d = suite_dir(size)
    return load_model_tables(model, d / "analysis.parquet", d / "patients.parquet")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--suite":
        for size in args[1:] or list(SIZES):
            print(size, suite_meta(size, refresh=True))
    else:
        for size in args or list(SIZES):
            print(size, len(load(size)))
