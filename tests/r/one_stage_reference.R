# lme4 / lmerTest reference values of the one-stage IPD models, for tests/pooling/test_one_stage_lme4.py.
#
# Usage (from the repository root):
#   Rscript tests/r/one_stage_reference.R tests/data/one_stage.csv <outdir>
#
# Reads the stacked harmonised sessions of the demo_ipd studies (tests/data/one_stage.csv, written by
# `python tests/pooling/test_one_stage_lme4.py --write-data`) and writes one JSON file per one-stage
# model into <outdir>, named <effect>.json (committed copies: tests/reference/one_stage/).
#
# The formulas are written out by hand from alliance.pooling.one_stage (ONE_STAGE_MODELS,
# one_stage_model): patients nested in studies, a random patient intercept, and per study a random
# intercept and a random slope of the within-patient alliance, uncorrelated.  Patient labels may
# repeat across studies; the patient term is study:patient.  REML with tight optimiser tolerances;
# since these fits can sit on the boundary (a variance at 0), each is fitted with nloptwrap and with
# BOBYQA (rhoend 1e-10) and the higher REML log-likelihood is kept.  Fixed-effect df and p are
# Satterthwaite (lmerTest).  Each file holds the fixed effects (estimate, SE, df, t, p), the variance
# components (variance and SD), the REML log-likelihood, theta and isSingular (lme4's default tol 1e-4).

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 2) stop("usage: Rscript tests/r/one_stage_reference.R <one_stage.csv> <outdir>")
csv <- args[[1]]
outdir <- args[[2]]
dir.create(outdir, showWarnings = FALSE, recursive = TRUE)

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
script_dir <- if (length(script_arg)) dirname(normalizePath(sub("^--file=", "", script_arg[[1]]))) else "tests/r"
source(file.path(script_dir, "reference_common.R"))

singular_cc <- .makeCC(action = "ignore", tol = 1e-4)
nlopt_ctrl <- tight_control(check.conv.singular = singular_cc)
bobyqa_ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5, rhoend = 1e-10), calc.derivs = TRUE,
                           check.conv.singular = singular_cc)

d <- read.csv(csv, stringsAsFactors = FALSE, colClasses = c(study = "character", patient = "character"))
d$study <- factor(d$study)
d$patient <- factor(d$patient)

random <- "(1 + alliance_within_patient || study) + (1 | study:patient)"
models <- list(
  list(name = "same_session",
       formula = paste("symptoms ~ alliance_within_patient + alliance_between_patient + session_c +", random)),
  list(name = "lagged_alliance_symptoms",
       formula = paste("symptoms_next ~ alliance_within_patient + alliance_between_patient",
                       "+ symptoms_within_patient + symptoms_between_patient + session_c +", random))
)

for (m in models) {
  fits <- list(
    nloptwrap = lmerTest::lmer(as.formula(m$formula), data = d, REML = TRUE, control = nlopt_ctrl),
    bobyqa = lmerTest::lmer(as.formula(m$formula), data = d, REML = TRUE, control = bobyqa_ctrl)
  )
  lls <- vapply(fits, function(f) as.numeric(logLik(f)), 0)
  winner <- names(fits)[which.max(lls)]
  fit <- fits[[winner]]
  ll <- logLik(fit)
  V <- as.matrix(vcov(fit))
  out <- list(
    name = m$name,
    data = basename(csv),
    formula = m$formula,
    method = "REML",
    n_obs = nobs(fit),
    n_groups = as.list(ngrps(fit)),
    loglik = as.numeric(ll),
    loglik_by_optimizer = as.list(lls),
    df_loglik = attr(ll, "df"),
    sigma2 = sigma(fit)^2,
    theta = I(unname(getME(fit, "theta"))),
    theta_names = I(names(getME(fit, "theta"))),
    is_singular = isSingular(fit, tol = 1e-4),
    convergence_messages = as.list(fit@optinfo$conv$lme4$messages),
    fixed = fixed_rows(fit),
    vcov_fixed = unname(V),
    vcov_terms = I(plain_term(colnames(V))),
    varcor = varcor_rows(fit),
    software = software_info()
  )
  out$software$optimizer <- paste("the higher REML log-likelihood of nloptwrap (xtol_abs 1e-12, ftol_abs 1e-14)",
                                  "and bobyqa (rhoend 1e-10):", winner)
  write_reference(out, outdir, m$name)
}
