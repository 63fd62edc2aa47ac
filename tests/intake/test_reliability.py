"""The keying check and reliability per measure (alliance.intake.reliability), through ``clean_dataset``.

The keying cases use a simulated export of 20 patients (the ``lab`` fixture's directory and
config, with a larger trial written into it) read as the WAI-S, whose registry reverse-keys
items 4 and 10 without having verified them: as answered (the export holds the raw responses
of the negatively worded items: the registry's keys are right), already keyed (the registry
would reverse them a second time: the run stops), and already keyed with
``already_keyed: true`` (passes, the items are not reversed again).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin
import pytest
import yaml
from scipy.stats import f as f_dist
from snakemake.utils import validate

from alliance.intake.findings import InputErrors
from alliance.intake.reliability import (
    KEYING_MIN_PATIENTS,
    KEYING_MIN_ROWS,
    NEGATIVE_ITEM_REST_R,
    alpha_cluster_se,
    already_keyed,
    item_rest_r,
)
from alliance.simulate import TrialDesign, simulate_trial
from testkit import ROOT
from testkit.lab import SESSIONS

TWENTY_SESSIONS, TWENTY_PATIENTS, _ = simulate_trial(
    TrialDesign(n_therapists=4, patients_per_therapist=5, add_mess=False), seed=3
)
WAI = [f"wai_{k:02d}" for k in range(1, 13)]
REVERSED = ["wai_04", "wai_10"]  # the registry's WAI-S reverse keys (items 4 and 10)


def wai_items(sessions: pd.DataFrame) -> np.ndarray:
    """The export's WAI items as numbers (missing: NaN)."""
    return sessions[WAI].apply(pd.to_numeric).to_numpy(dtype=float)


def as_answered(sessions: pd.DataFrame) -> pd.DataFrame:
    """The export as the WAI-S is answered: items 4 and 10 worded in reverse (1-7 scale: 8 - x)."""
    out = sessions.copy()
    for column in REVERSED:
        out[column] = (8 - pd.to_numeric(out[column])).astype("Int64").astype(str).replace("<NA>", "")
    return out


def item_rest_by_hand(x: np.ndarray) -> list[float]:
    """np.corrcoef of each item with the sum of the others, on the complete rows."""
    x = x[~np.isnan(x).any(axis=1)]
    return [float(np.corrcoef(x[:, j], x.sum(axis=1) - x[:, j])[0, 1]) for j in range(x.shape[1])]


def keyed(x: np.ndarray) -> np.ndarray:
    """WAI-S items 4 and 10 reversed (8 - x), as the registry keys them."""
    out = x.copy()
    out[:, [3, 9]] = 8 - out[:, [3, 9]]
    return out


@pytest.fixture
def wai_s_lab(lab):
    """The lab's directory with the 20-patient export, its alliance measure read as the WAI-S."""
    lab.write(TWENTY_SESSIONS, TWENTY_PATIENTS)
    lab.config["dataset"]["measures"]["alliance"]["instrument"] = "WAI-S"
    return lab


def keying_findings(lab, **cleaning) -> list[tuple]:
    """The findings about the whole sessions file (row and column empty): the keying check's."""
    return [f for f in lab.findings(**cleaning) if f[0] is None and f[1] is None]


# --------------------------------------------------------------------------- statistics


def test_alpha_and_item_rest_r_on_a_small_frame_match_hand_computation_and_pingouin():
    x = np.array([[1, 2, 1, 2], [2, 2, 3, 3], [3, 4, 3, 2], [4, 5, 4, 4], [5, 4, 5, 5]], dtype=float)
    k = 4
    item_vars = [np.var(x[:, j], ddof=1) for j in range(k)]  # 2.5, 1.8, 2.2, 1.7
    total_var = np.var(x.sum(axis=1), ddof=1)  # totals 6, 10, 12, 17, 19: 27.7
    by_hand = k / (k - 1) * (1 - sum(item_vars) / total_var)
    assert by_hand == pytest.approx(4 / 3 * (1 - 8.2 / 27.7)) == pytest.approx(0.938628, abs=1e-6)
    alpha, ci = pingouin.cronbach_alpha(pd.DataFrame(x), nan_policy="listwise")
    assert alpha == pytest.approx(by_hand, abs=1e-12)
    # Feldt's interval: 1 - (1 - alpha) F_{alpha/2 or 1-alpha/2}(n-1, (n-1)(k-1))
    low = 1 - (1 - by_hand) * f_dist.isf(0.025, 4, 12)
    high = 1 - (1 - by_hand) * f_dist.isf(0.975, 4, 12)
    assert ci.tolist() == [round(low, 3), round(high, 3)]
    assert item_rest_r(x).tolist() == pytest.approx(item_rest_by_hand(x), abs=1e-12)


def test_the_adf_standard_error_of_alpha_matches_its_normal_theory_value():
    # compound symmetry (parallel items), k = 6, rho = 0.4: alpha = 0.8 and, for normal items,
    # n var(alpha) -> 2k (1 - alpha)^2 / (k - 1) (van Zyl, Neudecker & Nel, 2000)
    k, rho, n = 6, 0.4, 20_000
    cov = np.full((k, k), rho) + (1 - rho) * np.eye(k)
    x = np.random.default_rng(2026).multivariate_normal(np.zeros(k), cov, size=n)
    expected = np.sqrt(2 * k * (1 - 0.8) ** 2 / ((k - 1) * n))
    assert alpha_cluster_se(x, np.arange(n)) == pytest.approx(expected, rel=0.05)


def test_the_all_sessions_se_counts_a_patient_once_however_many_rows_repeat_them():
    x = np.random.default_rng(5).multivariate_normal(np.zeros(4), np.full((4, 4), 0.5) + 0.5 * np.eye(4), size=200)
    once = alpha_cluster_se(x, np.arange(200))
    repeated = np.repeat(x, 5, axis=0)  # every patient's row five times: no new information
    assert alpha_cluster_se(repeated, np.repeat(np.arange(200), 5)) == pytest.approx(once, rel=1e-10)
    # treating the repeated rows as independent would claim sqrt(5) times the precision
    assert alpha_cluster_se(repeated, np.arange(1000)) == pytest.approx(once / np.sqrt(5), rel=0.01)


# --------------------------------------------------------------------------- the reliability table


def test_the_reliability_table_holds_alpha_at_the_first_session_and_over_all_sessions(wai_s_lab):
    wai_s_lab.write(as_answered(TWENTY_SESSIONS))
    result = wai_s_lab.clean()
    table = result.reliability.set_index(["measure", "sample"])
    x = keyed(wai_items(as_answered(TWENTY_SESSIONS)))
    complete = ~np.isnan(x).any(axis=1)
    first = (TWENTY_SESSIONS["session"] == TWENTY_SESSIONS.groupby("patient")["session"].transform("min")).to_numpy()
    for sample, rows in (("first_session", complete & first), ("all_sessions", complete)):
        row = table.loc[("alliance", sample)]
        alpha, feldt = pingouin.cronbach_alpha(pd.DataFrame(x[rows]))
        assert (row["rows"], row["alpha"]) == (rows.sum(), pytest.approx(alpha, abs=1e-12))
        assert row["keys_applied"] == "yes" and row["reverse_items"] == "4 10"
        r = item_rest_by_hand(x[rows])
        assert (row["lowest_item"], row["lowest_item_rest_r"]) == (np.argmin(r) + 1, pytest.approx(min(r)))
    assert table.loc[("alliance", "first_session"), ["alpha_ci_low", "alpha_ci_high"]].tolist() == feldt_of(
        x[complete & first]
    )
    assert table.loc[("alliance", "all_sessions"), "patients"] == 20
    assert sorted(set(result.reliability["measure"])) == ["alliance", "gad7", "phq9"]
    items = result.item_rest.query("measure == 'alliance' and sample == 'all_sessions'")
    assert items["item_rest_r"].tolist() == pytest.approx(item_rest_by_hand(x[complete]), abs=1e-12)
    assert items.loc[items["reversed_in_scoring"], "column"].tolist() == REVERSED


def feldt_of(x: np.ndarray) -> list[float]:
    """pingouin's Feldt interval of alpha."""
    return pingouin.cronbach_alpha(pd.DataFrame(x))[1].tolist()


# --------------------------------------------------------------------------- the keying check


def test_reverse_keyed_items_as_answered_are_keyed_and_the_unverified_keys_reported(wai_s_lab):
    wai_s_lab.write(as_answered(TWENTY_SESSIONS))
    result = wai_s_lab.clean()
    x = keyed(wai_items(as_answered(TWENTY_SESSIONS)))
    r = item_rest_by_hand(x)
    rows = int((~np.isnan(x).any(axis=1)).sum())
    assert min(r) > NEGATIVE_ITEM_REST_R
    assert keying_findings(wai_s_lab) == [
        (
            None,
            None,
            None,
            "measure 'alliance' (WAI-S): the registry's reverse keys are not verified against the source; they "
            f"were applied, and the data agree: after keying, items 4 (column 'wai_04') and 10 (column 'wai_10') "
            f"correlate with the rest of the scale at item–rest r = {r[3]:.2f} and {r[9]:.2f} ({rows} complete "
            "session rows, 20 patients).",
            "warn",
        )
    ]
    complete = result.sessions.loc[~result.sessions["alliance_prorated"] & result.sessions["alliance_total"].notna()]
    assert complete["alliance_total"].tolist() == x[~np.isnan(x).any(axis=1)].sum(axis=1).tolist()


def test_an_export_already_keyed_that_the_registry_reverses_again_stops_the_run(wai_s_lab):
    x = keyed(wai_items(TWENTY_SESSIONS))  # the export holds keyed scores; the registry reverses 4 and 10 again
    r = item_rest_by_hand(x)
    rows = int((~np.isnan(x).any(axis=1)).sum())
    assert r[3] < NEGATIVE_ITEM_REST_R and r[9] < NEGATIVE_ITEM_REST_R
    assert wai_s_lab.stop() == [
        f"{SESSIONS}: measure 'alliance' (WAI-S): reverse-keyed items 4 (column 'wai_04') and 10 (column "
        "'wai_10') in the registry correlate negatively with the rest of the scale after reversal (item–rest r = "
        f"{r[3]:.2f} and {r[9]:.2f}; {rows} complete session rows, 20 patients): the export looks already keyed, "
        "and reversing again turns these items against the scale. The registry's reverse keys of WAI-S are not "
        "verified against the source (see its notes). If the export holds keyed scores, set "
        "dataset.measures.alliance.already_keyed: true; otherwise check the item order of the form your data used."
    ]


def test_already_keyed_true_scores_the_keyed_export_without_reversing_again(wai_s_lab):
    wai_s_lab.config["dataset"]["measures"]["alliance"]["already_keyed"] = True
    result = wai_s_lab.clean()
    x = wai_items(TWENTY_SESSIONS)
    r = item_rest_by_hand(x)
    rows = int((~np.isnan(x).any(axis=1)).sum())
    assert keying_findings(wai_s_lab) == [
        (
            None,
            None,
            None,
            "measure 'alliance' (WAI-S): the registry's reverse keys are not verified against the source; they "
            "were not applied (already_keyed: true), and the data agree: after keying, items 4 (column 'wai_04') "
            f"and 10 (column 'wai_10') correlate with the rest of the scale at item–rest r = {r[3]:.2f} and "
            f"{r[9]:.2f} ({rows} complete session rows, 20 patients).",
            "warn",
        )
    ]
    table = result.reliability.set_index(["measure", "sample"])
    assert table.loc[("alliance", "all_sessions"), "keys_applied"] == "no (already_keyed: true)"
    scored = result.sessions.loc[~result.sessions["alliance_prorated"] & result.sessions["alliance_total"].notna()]
    assert scored["alliance_total"].tolist() == x[~np.isnan(x).any(axis=1)].sum(axis=1).tolist()
    assert result.item_rest.query("measure == 'alliance'")["reversed_in_scoring"].sum() == 0


def test_already_keyed_true_on_an_export_as_answered_stops_the_run(wai_s_lab):
    wai_s_lab.write(as_answered(TWENTY_SESSIONS))
    wai_s_lab.config["dataset"]["measures"]["alliance"]["already_keyed"] = True
    r = item_rest_by_hand(wai_items(as_answered(TWENTY_SESSIONS)))
    (message,) = wai_s_lab.stop()
    assert message.startswith(
        f"{SESSIONS}: measure 'alliance' (WAI-S): reverse-keyed items 4 (column 'wai_04') and 10 (column 'wai_10') "
        f"in the registry correlate negatively with the rest of the scale (item–rest r = {r[3]:.2f} and "
        f"{r[9]:.2f}; "
    )
    assert message.endswith(
        "although dataset.measures.alliance.already_keyed is true (not reversed): the export looks unkeyed (as "
        "answered); remove already_keyed (or set it to false) so that the registry's keys are applied."
    )


def test_an_item_reversed_in_the_export_but_not_in_the_registry_is_a_finding(wai_s_lab):
    wai_s_lab.config["dataset"]["measures"]["alliance"]["instrument"] = "WAI-SR"  # no reverse keys
    frame = TWENTY_SESSIONS.copy()
    frame["wai_07"] = (6 - pd.to_numeric(frame["wai_07"])).astype("Int64").astype(str).replace("<NA>", "")
    wai_s_lab.write(frame)
    r = item_rest_by_hand(wai_items(frame))
    rows = int((~np.isnan(wai_items(frame)).any(axis=1)).sum())
    assert [j + 1 for j, v in enumerate(r) if v < NEGATIVE_ITEM_REST_R] == [7]
    assert keying_findings(wai_s_lab) == [
        (
            None,
            None,
            None,
            "measure 'alliance' (WAI-SR): item 7 (column 'wai_07'), not reverse-keyed in the registry, correlates "
            f"negatively with the rest of the scale (item–rest r = {r[6]:.2f}, below -0.1; {rows} complete session "
            "rows, 20 patients): check whether the form your data used words it in reverse, or the item order.",
            "warn",
        )
    ]


def test_too_few_patients_for_the_check_says_the_unverified_keys_were_applied_unchecked(lab):
    lab.config["dataset"]["measures"]["alliance"]["instrument"] = "WAI-S"
    result = lab.clean()
    rows = int(result.reliability.set_index(["measure", "sample"]).loc[("alliance", "all_sessions"), "rows"])
    assert keying_findings(lab) == [
        (
            None,
            None,
            None,
            "measure 'alliance' (WAI-S): the registry's reverse keys (items 4, 10) are not verified against the "
            f"source and were applied without an empirical check: only {rows} complete session rows from 6 "
            f"patients (the check needs {KEYING_MIN_ROWS} rows from {KEYING_MIN_PATIENTS} patients); check the "
            "keying of the form your data used.",
            "warn",
        )
    ]


# --------------------------------------------------------------------------- the config key


def test_already_keyed_is_optional_and_false_by_default(lab):
    schema = ROOT / "workflow/schemas/config.schema.yaml"
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    assert "already_keyed" not in config["dataset"]["measures"]["alliance"]
    validate(config, str(schema), set_default=True)
    assert config["dataset"]["measures"]["alliance"]["already_keyed"] is False
    assert already_keyed({"instrument": "WAI-S", "items": "wai_{item:02d}"}) is False
    config["dataset"]["measures"]["alliance"]["already_keyed"] = "yes"
    with pytest.raises(Exception, match="'yes' is not of type 'boolean'"):
        validate(config, str(schema))
    lab.clean()  # the lab's config has no already_keyed: the run goes through


def test_a_keying_stop_is_one_input_error_under_the_intake_heading(wai_s_lab):
    with pytest.raises(InputErrors) as info:
        wai_s_lab.clean()
    assert info.value.heading == "1 problem in the input data stops the run; nothing was written"


# --------------------------------------------------------------------------- what the report shows


def test_the_report_measures_table_reads_alpha_from_the_intake_table(wai_s_lab):
    from alliance.intake.registry import load_registry
    from alliance.report.tables import instrument_rows

    wai_s_lab.write(as_answered(TWENTY_SESSIONS))
    table = wai_s_lab.clean().reliability
    rows = {r["measure"]: r for r in instrument_rows(wai_s_lab.config, load_registry(), None, table)}
    for sample in ("first_session", "all_sessions"):
        t = table.set_index(["measure", "sample"]).loc[("alliance", sample)]
        assert rows["alliance"][f"alpha_{sample}"] == (
            f"{t['alpha']:.2f} ({t['alpha_ci_low']:.2f}–{t['alpha_ci_high']:.2f}), {t['rows']} rows"
        )
    assert rows["alliance"]["already_keyed"] is False
    changed = table.assign(alpha=table["alpha"] + 0.1)  # the report shows the table's numbers, not its own
    rows = {r["measure"]: r for r in instrument_rows(wai_s_lab.config, load_registry(), None, changed)}
    assert rows["alliance"]["alpha_all_sessions"].startswith(
        f"{table.set_index(['measure', 'sample']).loc[('alliance', 'all_sessions'), 'alpha'] + 0.1:.2f} ("
    )
    assert instrument_rows(wai_s_lab.config, load_registry())[0]["alpha_first_session"] == "–"


def test_the_data_dictionary_says_when_reverse_keyed_items_came_keyed(wai_s_lab):
    wai_s_lab.config["dataset"]["measures"]["alliance"]["already_keyed"] = True
    meaning = wai_s_lab.clean().dictionary.set_index("column")["meaning"]
    assert meaning["alliance_item_04"] == (
        "Working Alliance Inventory - Short form (client version): item 4 as answered; reverse-keyed, already "
        "keyed in the export (already_keyed: true) (invalid values set missing)"
    )
    assert meaning["alliance_item_05"].endswith("item 5 as answered (invalid values set missing)")


def test_already_keyed_on_a_measure_given_by_its_total_is_a_config_error():
    from alliance.intake.config import ConfigError, check_dataset_config

    config = yaml.safe_load((ROOT / "config/demo_lab2.yaml").read_text())
    key = next(k for k, m in config["dataset"]["measures"].items() if "total" in m)
    config["dataset"]["measures"][key]["already_keyed"] = False  # the schema's default, filled in: fine
    check_dataset_config(config["dataset"], config["analysis"], config.get("cleaning"), config.get("instruments"))
    config["dataset"]["measures"][key]["already_keyed"] = True
    with pytest.raises(ConfigError) as info:
        check_dataset_config(config["dataset"], config["analysis"], config.get("cleaning"), config.get("instruments"))
    assert str(info.value) == (
        f"dataset.measures.{key}.already_keyed: says whether the export's items are already keyed; a measure "
        "given by `total` has no items to key (remove `already_keyed`)"
    )
