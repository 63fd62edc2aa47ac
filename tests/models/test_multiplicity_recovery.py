"""Multiplicity control does what it claims (alliance.models.multiplicity): over seeded replications
of simulated test statistics laid out as the demo suite's families (the rows that
:func:`~alliance.models.multiplicity.multiplicity_table` makes for config/config.yaml: every focal
term of every model in ``suite``, the moderation model's strata in their own family), Holm keeps
the family-wise error rate and Benjamini-Hochberg the false-discovery rate at or below .05, under
independence and under positive equicorrelation (rho = .5: the suite's models share their data),
and both reject most of the true effects.  Agreement with R's p.adjust is tested in
tests/models/test_multiplicity.py (tests/r/p_adjust.R).

Statistics: z = mu + sqrt(rho) c + sqrt(1 - rho) e per row (c one draw per family and
replication), two-sided p; a true effect has mu = 3.5 (power of one unadjusted test at .05:
0.94).  The null scenario has every mu = 0, the mixed one a true effect for every third row of
each family.  Rates are over replications and families: FWER = share of family-replications with
any true null rejected; FDR = mean of (false rejections / rejections, 0 when none); power = share of
true effects rejected.
"""

from __future__ import annotations

import functools
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from alliance.dynamics.recovery import map_replications
from alliance.models import multiplicity
from testkit import demo_config

ALPHA = 0.05
EFFECT = 3.5


@functools.lru_cache(maxsize=None)
def suite_families() -> tuple[tuple[str, int], ...]:
    """(family, size) of the demo suite's multiplicity table: the families and their sizes as the
    pipeline's code makes them from the config's models (p values here are placeholders)."""
    models = [m for m in demo_config()["models"] if m.get("type") != "riclpm"]
    fixed, strata = {}, {}
    for m in models:
        terms = list(m.get("roles") or {})
        frame = pd.DataFrame({"term": terms, "estimate": 1.0, "se": 1.0, "df": 50.0, "statistic": 1.0, "p": 0.5})
        fixed[m["name"]] = frame.assign(flags="none")
        if m.get("strata"):
            slugs = ["all", *[f"s{i}" for i in range(6)]]  # therapy (3) x condition (2) and all patients
            strata[m["name"]] = {s: frame.assign(stratum=s, flags="none") for s in slugs}
    table = multiplicity.multiplicity_table(models, fixed, strata)
    return tuple(table.groupby("family", sort=False)["family_size"].first().items())


def test_the_demo_suite_has_the_families_the_study_simulates():
    families = dict(suite_families())
    # 9 lagged models x 2 terms, same_session 2, three_level 3, four end-of-treatment models 1 + 1 + 1 + 2,
    # moderation's 2 terms from its stratum 'all': 28; its 6 strata x 2 terms: 12
    assert families == {"suite": 28, "strata:moderation": 12}


def _rates(p: np.ndarray, effect: np.ndarray) -> dict[str, np.ndarray]:
    """Per replication (rows of ``p``): any false rejection (Holm), false-discovery proportion (BH),
    true effects rejected by each."""
    out = {"holm_any_false": [], "bh_fdp": [], "holm_power": [], "bh_power": []}
    # statsmodels' multipletests runs gc.collect() on every call (0.2 s each with the test session's
    # heap): its results do not depend on it, so the study skips it
    with mock.patch("gc.collect"):
        adjusted_rows = [multiplicity.adjust_p(row) for row in p]
    for adjusted in adjusted_rows:
        holm, bh = adjusted["p_holm"].to_numpy() < ALPHA, adjusted["p_bh"].to_numpy() < ALPHA
        out["holm_any_false"].append(bool((holm & ~effect).any()))
        out["bh_fdp"].append(float((bh & ~effect).sum() / max(bh.sum(), 1)))
        if effect.any():
            out["holm_power"].append(float((holm & effect).sum() / effect.sum()))
            out["bh_power"].append(float((bh & effect).sum() / effect.sum()))
    return {k: np.asarray(v) for k, v in out.items() if v}


def family_replications(seed, size: int, rho: float, mixed: bool, n: int) -> dict[str, np.ndarray]:
    """``n`` replications of one family of ``size`` tests (module docstring)."""
    rng = np.random.default_rng(seed)
    effect = (np.arange(size) % 3 == 0) if mixed else np.zeros(size, bool)
    z = EFFECT * effect + np.sqrt(rho) * rng.standard_normal((n, 1)) + np.sqrt(1 - rho) * rng.standard_normal((n, size))
    return _rates(2 * norm.sf(np.abs(z)), effect)


def _job(job: tuple, rho: float, mixed: bool, n: int) -> dict[str, np.ndarray]:
    """One chunk: (seed, family size) -> :func:`family_replications` (picklable for the workers)."""
    seed, size = job
    return family_replications(seed, size, rho, mixed, n)


#: replications per chunk (one job of a worker)
CHUNK = 500


def _study(rho: float, mixed: bool, n: int, seed: int, processes: int = 1) -> dict[str, float]:
    """Pooled rates over the suite's families, ``n`` replications of each in chunks of :data:`CHUNK`."""
    jobs = [
        (s, size)
        for k, (_, size) in enumerate(suite_families())
        for s in np.random.SeedSequence([seed, k, int(rho * 10), int(mixed)]).spawn(max(n // CHUNK, 1))
    ]
    job = functools.partial(_job, rho=rho, mixed=mixed, n=min(n, CHUNK))
    results = map_replications(job, jobs, processes=processes)
    pooled = {k: np.concatenate([r[k] for r in results]) for k in results[0]}
    rates = {
        "fwer_holm": float(pooled["holm_any_false"].mean()),
        "fdr_bh": float(pooled["bh_fdp"].mean()),
        "replications": int(len(pooled["bh_fdp"])),
    }
    if mixed:
        rates |= {"power_holm": float(pooled["holm_power"].mean()), "power_bh": float(pooled["bh_power"].mean())}
    return rates


def _mc_bound(rate: float, replications: int) -> float:
    """``rate`` plus 3 Monte Carlo SEs of a proportion near it."""
    return rate + 3 * np.sqrt(rate * (1 - rate) / replications)


@pytest.mark.parametrize("rho", [0.0, 0.5])
def test_holm_and_bh_control_their_error_rates_and_have_power_cheap(rho):
    """250 replications of each family with a third of the tests true effects (under 1 s)."""
    rates = _study(rho, mixed=True, n=250, seed=11)
    assert rates["replications"] == 500
    assert rates["fwer_holm"] <= _mc_bound(ALPHA, 500), rates
    assert rates["fdr_bh"] <= _mc_bound(ALPHA, 500), rates
    assert rates["power_holm"] > 0.6 and rates["power_bh"] > rates["power_holm"], rates


def test_unadjusted_p_would_not_control_the_family_wise_error():
    """The check can fail: without adjustment, 28 null tests reject at least once in 1 - .95^28 = 76 %
    of replications under independence; Holm, BH in about 5 %."""
    rng = np.random.default_rng(3)
    p = 2 * norm.sf(np.abs(rng.standard_normal((400, 28))))
    assert 0.70 < (p < ALPHA).any(axis=1).mean() < 0.82
    rates = _rates(p, np.zeros(28, bool))
    assert rates["holm_any_false"].mean() < 0.09 and rates["bh_fdp"].mean() < 0.09


#: replications of each family in the slow study (10,000 family-replications per scenario)
SLOW_REPLICATIONS = 5000


@pytest.mark.slow
@pytest.mark.parametrize("rho", [0.0, 0.5])
@pytest.mark.parametrize("mixed", [False, True], ids=["all_null", "third_true"])
def test_holm_fwer_and_bh_fdr_at_most_05_over_many_replications(rho, mixed):
    """5,000 replications of each of the suite's two families (10,000 family-replications; 130 s for
    the four scenarios on 2 cores at load 15).  Measured (seed 20261201)::

        scenario                rho   FWER Holm   FDR BH   power Holm   power BH
        every test null         0.0   .0477       .0489
        every test null         0.5   .0339       .0388
        a third true effects    0.0   .0397       .0318    .715         .857
        a third true effects    0.5   .0305       .0304    .714         .846

    Bounds: each rate at most .05 + 3 Monte Carlo SE (.0065); power above 0.6 and BH's above Holm's."""
    rates = _study(rho, mixed=mixed, n=SLOW_REPLICATIONS, seed=20261201, processes=2)
    assert rates["replications"] == 2 * SLOW_REPLICATIONS
    bound = _mc_bound(ALPHA, rates["replications"])
    assert rates["fwer_holm"] <= bound and rates["fdr_bh"] <= bound, rates
    if mixed:
        assert rates["power_holm"] > 0.6 and rates["power_bh"] > rates["power_holm"], rates
