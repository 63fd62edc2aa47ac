"""How the report names the test of each contrast and joint test: from the ``df_method`` and
``df_denominator`` the model stage wrote (alliance.engines.ddf), never assumed per engine."""

from __future__ import annotations

from alliance.report import comparisons
from alliance.report import wording as W


def _fit(name: str, df_denominator: float | None, method: str) -> dict:
    """A hand-made fit.json of a moderation model with one omnibus test of moderation by therapy."""
    return {
        "spec": {"name": name},
        "config": {"name": name},
        "label": f"Model {name}",
        "contrasts": [
            {
                "kind": "wald",
                "name": "interaction: w x therapy",
                "moderator": "therapy",
                "term": "all",
                "statistic": 3.5,
                "df": 2,
                "df_denominator": df_denominator,
                "p": 0.04,
                "df_method": method,
            },
            {"kind": "contrast", "name": "c", "df_method": method.replace("F, ", "t, ")},
        ],
    }


def test_heterogeneity_tests_are_f_with_their_denominator_df_or_chi_square():
    rows = comparisons.heterogeneity_tests(
        [
            _fit("m", 27.01, "F, Satterthwaite (mixedlm 1.3.0)"),
            _fit("s", None, "Wald chi-square (asymptotic)"),
        ]
    )
    assert [(r["model"], r["test"], r["df"], r["df_denominator"]) for r in rows] == [
        ("m", "F", 2, 27.01),
        ("s", "χ²", 2, None),
    ]
    assert rows[0]["source"] == "contrast¦m¦interaction: w x therapy¦"


def test_contrast_sentence_follows_each_models_df_method():
    satt = _fit("m", 27.01, "F, Satterthwaite (lmerTest 3.1.3)")
    asym = _fit("s", None, "Wald chi-square (asymptotic)")
    asym["contrasts"][1]["df_method"] = "Wald z (asymptotic)"
    long, short = W.contrast_tests_text([satt])
    assert long.startswith("Contrasts (such as the contextual effect) and simple slopes are t tests with Satterthwaite")
    assert short == "contrasts are t and F tests with Satterthwaite degrees of freedom"
    long, short = W.contrast_tests_text([satt, asym])
    assert long.startswith("For m, contrasts (such as") and "; for s, contrasts and simple slopes are Wald z" in long
    assert short.endswith("or Wald z where the engine gives none")
    assert W.contrast_tests_text([{"spec": {"name": "x"}}]) == (
        "No model has contrasts or tests of several coefficients.",
        "",
    )
