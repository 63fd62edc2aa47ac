# lme4 / lmerTest reference values for tests/test_engine.py.
#
# Usage (from the repository root):
#   Rscript tests/r/lme4_reference.R <outdir> [--export-sleepstudy <csv path>]
#
# Writes one JSON file per model into <outdir> (committed copies: tests/reference/*.json).
# Reads the simulated data sets tests/data/three_level.csv and tests/data/boundary.csv
# (generated in Python with fixed seeds; see simulate_* in tests/test_engine.py).
# sleepstudy comes from lme4 itself; with --export-sleepstudy the data are also written to
# that CSV path (committed copy: tests/data/sleepstudy.csv).
#
# sleepstudy: Belenky G, Wesensten NJ, Thorne DR, et al. (2003). Patterns of performance
# degradation and restoration during sleep restriction and subsequent recovery: a sleep
# dose-response study. Journal of Sleep Research 12, 1-12.  Distributed with the R package
# lme4 (Bates, Maechler, Bolker & Walker 2015, J Stat Softw 67(1)), licence GPL (>= 2).
#
# Fits: REML (unless stated) with tight optimiser tolerances so that the references are
# accurate well beyond the test tolerances.  Fixed-effect df and p are Satterthwaite (lmerTest).

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 1) stop("usage: Rscript tests/r/lme4_reference.R <outdir> [--export-sleepstudy <csv>]")
outdir <- args[[1]]
export_csv <- NULL
i <- match("--export-sleepstudy", args)
if (!is.na(i)) {
  if (length(args) < i + 1) stop("--export-sleepstudy needs a path")
  export_csv <- args[[i + 1]]
}
dir.create(outdir, showWarnings = FALSE, recursive = TRUE)

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
script_dir <- if (length(script_arg)) dirname(normalizePath(sub("^--file=", "", script_arg[[1]]))) else "tests/r"
data_dir <- normalizePath(file.path(script_dir, "..", "data"))

source(file.path(script_dir, "reference_common.R"))
ctrl <- tight_control()

data("sleepstudy", package = "lme4")
if (!is.null(export_csv)) {
  ss <- data.frame(Reaction = sleepstudy$Reaction, Days = sleepstudy$Days,
                   Subject = as.character(sleepstudy$Subject))
  write.csv(ss, export_csv, row.names = FALSE)
}

read_sim <- function(file) {
  d <- read.csv(file.path(data_dir, file), stringsAsFactors = FALSE)
  d$therapist <- factor(d$therapist)
  d$patient <- factor(d$patient)
  d
}
three <- read_sim("three_level.csv")
bound <- read_sim("boundary.csv")

models <- list(
  list(name = "sleepstudy_corr", data = "sleepstudy.csv", df = sleepstudy, reml = TRUE,
       formula = "Reaction ~ Days + (1 + Days | Subject)"),
  list(name = "sleepstudy_corr_ml", data = "sleepstudy.csv", df = sleepstudy, reml = FALSE,
       formula = "Reaction ~ Days + (1 + Days | Subject)"),
  list(name = "sleepstudy_uncorr", data = "sleepstudy.csv", df = sleepstudy, reml = TRUE,
       formula = "Reaction ~ Days + (1 + Days || Subject)"),
  list(name = "sleepstudy_intercept", data = "sleepstudy.csv", df = sleepstudy, reml = TRUE,
       formula = "Reaction ~ 1 + (1 | Subject)"),
  list(name = "three_level", data = "three_level.csv", df = three, reml = TRUE,
       formula = "y ~ x_cwc + x_pm_c + session_c + (1 | therapist) + (1 + x_cwc || therapist:patient)"),
  # identical to y ~ 1 + (1 | therapist/patient)
  list(name = "three_level_split", data = "three_level.csv", df = three, reml = TRUE,
       formula = "y ~ 1 + (1 | therapist) + (1 | therapist:patient)"),
  # true therapist variance 0: lme4 estimates it as exactly 0 (isSingular TRUE)
  list(name = "boundary", data = "boundary.csv", df = bound, reml = TRUE,
       formula = "y ~ x_cwc + x_tm_c + (1 | therapist) + (1 | therapist:patient)"),
  # appended for tests/test_engines.py: the correlated three-level form (therapist intercept,
  # correlated patient intercept and slope nested in therapist) that statsmodels cannot fit
  list(name = "three_level_corr", data = "three_level.csv", df = three, reml = TRUE,
       formula = "y ~ x_cwc + x_pm_c + session_c + (1 | therapist) + (1 + x_cwc | therapist:patient)")
)

na_null <- function(x) if (is.na(x)) NULL else x

for (m in models) {
  fit <- lmerTest::lmer(as.formula(m$formula), data = m$df, REML = m$reml, control = ctrl)
  V <- as.matrix(vcov(fit))
  fixed <- fixed_rows(fit)
  varcor <- varcor_rows(fit)
  re <- as.data.frame(ranef(fit, condVar = TRUE))
  ranef_rows <- lapply(seq_len(nrow(re)), function(k) list(
    grp = as.character(re$grpvar[k]),
    term = plain_term(as.character(re$term[k])),
    level = as.character(re$grp[k]),
    condval = re$condval[k],
    condsd = re$condsd[k]
  ))
  ll <- logLik(fit)
  out <- list(
    name = m$name,
    data = m$data,
    formula = m$formula,
    method = if (m$reml) "REML" else "ML",
    n_obs = nobs(fit),
    n_groups = as.list(ngrps(fit)),
    loglik = as.numeric(ll),
    df_loglik = attr(ll, "df"),
    aic = AIC(fit),
    bic = BIC(fit),
    sigma2 = sigma(fit)^2,
    theta = I(unname(getME(fit, "theta"))),
    is_singular = isSingular(fit),
    convergence_messages = as.list(fit@optinfo$conv$lme4$messages),
    fixed = fixed,
    vcov_fixed = unname(V),
    vcov_terms = I(plain_term(colnames(V))),
    varcor = varcor,
    ranef = ranef_rows,
    software = software_info()
  )
  write_reference(out, outdir, m$name)
}
