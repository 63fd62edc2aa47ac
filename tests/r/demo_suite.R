# lme4 / lmerTest reference values of every model of the demo suite, for tests/test_suite_lme4.py.
#
# Usage (from the repository root):
#   Rscript tests/r/demo_suite.R <outdir> [--export-anorexia <csv path>]
#
# Reads the compact exports of the demo analysis tables, tests/data/demo_analysis.csv (one row
# per patient and session) and tests/data/demo_patients.csv (one row per patient), written by
# `python tests/test_suite_lme4.py --write-data` from the cleaned demo data.  The variables the
# suite derives for particular models (expectancy_c, symptoms_baseline_c, symptoms_change_s3,
# alliance_cwt, alliance_tm_c, the detrended within-patient parts, the parts recomputed from a
# model's own rows) are computed here again, independently, from their definitions
# (config/README.md, models).  Writes one JSON file per model into <outdir>, named
# demo_<model>.json (strata: demo_<model>_stratum_<stratum>.json); committed copies are in
# tests/reference/suite/ (kept apart from the engine references of lme4_reference.R).
#
# The formulas are written out by hand from the config (config/config.yaml, models), as the
# config states them: `three_level` has a correlated patient intercept and slope nested in
# therapists, `(1 + x | therapist:patient)` (the default engine, mixedlm, fits it; statsmodels
# fits it as `||` with the flag 'simplified'), the moderation model and its strata use `||`
# (`correlated: false`).  REML, tight optimiser tolerances; df and p of fixed effects are
# Satterthwaite (lmerTest).
#
# Besides lme4's own output each file holds the marginal and conditional R^2 computed as MuMIn's
# r.squaredGLMM does for a linear mixed model (Nakagawa & Schielzeth 2013; Johnson 2014):
# var(X b) (n - 1), the mean of z_i' Sigma z_i per random-effects term, and sigma^2.

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 1) stop("usage: Rscript tests/r/demo_suite.R <outdir> [--export-anorexia <csv>]")
outdir <- args[[1]]
export_anorexia <- NULL
i <- match("--export-anorexia", args)
if (!is.na(i)) export_anorexia <- args[[i + 1]]
dir.create(outdir, showWarnings = FALSE, recursive = TRUE)

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
script_dir <- if (length(script_arg)) dirname(normalizePath(sub("^--file=", "", script_arg[[1]]))) else "tests/r"
data_dir <- normalizePath(file.path(script_dir, "..", "data"))

source(file.path(script_dir, "reference_common.R"))
ctrl <- tight_control(check.conv.singular = .makeCC(action = "ignore", tol = 1e-4))

sessions <- read.csv(file.path(data_dir, "demo_analysis.csv"), stringsAsFactors = FALSE)
patients <- read.csv(file.path(data_dir, "demo_patients.csv"), stringsAsFactors = FALSE)

# --- derived variables (definitions: config/README.md, models; alliance/models/data.py) --------
# expectancy_c: expectancy minus the grand mean of patient means (each patient weight 1)
pm_exp <- tapply(sessions$expectancy, sessions$patient, mean)
sessions$expectancy_c <- sessions$expectancy - mean(pm_exp, na.rm = TRUE)
# patient level
patients$symptoms_baseline_c <- patients$symptoms_baseline - mean(patients$symptoms_baseline, na.rm = TRUE)
patients$symptoms_change_s3 <- patients$symptoms_s3 - patients$symptoms_baseline
ok <- !is.na(patients$alliance_patient_mean)
tm <- tapply(patients$alliance_patient_mean[ok], patients$therapist[ok], mean)
patients$alliance_cwt <- patients$alliance_patient_mean - tm[patients$therapist]
patients$alliance_tm_c <- tm[patients$therapist] - mean(patients$alliance_patient_mean[ok])
patients$alliance_cwt[!ok] <- NA
patients$alliance_tm_c[!ok] <- NA

# detrended within-patient parts: the residual of the patient's own least-squares line over session,
# from the sessions with the value, missing with fewer than 3 (docs/methods.md section 4.5)
detrended <- function(d, v) {
  out <- rep(NA_real_, nrow(d))
  for (p in unique(d$patient)) {
    i <- which(d$patient == p & !is.na(d[[v]]))
    if (length(i) >= 3) out[i] <- unname(residuals(lm(d[[v]][i] ~ d$session[i])))
  }
  out
}
sessions$alliance_within_patient_detrended <- detrended(sessions, "alliance")
sessions$symptoms_within_patient_detrended <- detrended(sessions, "symptoms")
# `person_means: model_rows`: the model's complete-case rows, with the within- and between-patient
# parts of alliance and symptoms recomputed from those rows alone (docs/methods.md section 4.2)
from_model_rows <- function(d, formula) {
  d <- d[complete.cases(d[, all.vars(as.formula(formula))]), ]
  for (v in c("alliance", "symptoms")) {
    pm <- tapply(d[[v]], d$patient, mean)
    d[[paste0(v, "_within_patient")]] <- d[[v]] - unname(pm[d$patient])
    d[[paste0(v, "_between_patient")]] <- unname(pm[d$patient]) - mean(pm)
  }
  d
}

# categorical columns with the config's reference levels (coefficients renamed column[T.level])
factor_levels <- list(therapy = c("CBT", "PDT", "IPT"), condition = c("depression", "anxiety"))
for (col in names(factor_levels)) {
  sessions[[col]] <- relevel(factor(sessions[[col]]), ref = factor_levels[[col]][1])
  patients[[col]] <- relevel(factor(patients[[col]]), ref = factor_levels[[col]][1])
}
py_term <- function(term) {
  term <- plain_term(term)
  parts <- strsplit(term, ":", fixed = TRUE)[[1]]
  for (col in names(factor_levels)) {
    for (lev in factor_levels[[col]]) {
      parts[parts == paste0(col, lev)] <- paste0(col, "[T.", lev, "]")
    }
  }
  paste(parts, collapse = ":")
}

three_level_re <- "(1 | therapist) + (1 + alliance_within_patient || therapist:patient)"
three_level_corr_re <- "(1 | therapist) + (1 + alliance_within_patient | therapist:patient)"
moderation_fixed <- paste(
  "alliance_within_patient + alliance_between_patient + session_c + therapy + condition",
  "+ alliance_within_patient:therapy + alliance_between_patient:therapy",
  "+ alliance_within_patient:condition + alliance_between_patient:condition"
)
models <- list(
  list(name = "variance_outcome", data = "sessions", formula = "symptoms ~ 1 + (1 | therapist) + (1 | therapist:patient)"),
  list(name = "variance_alliance", data = "sessions", formula = "alliance ~ 1 + (1 | therapist) + (1 | therapist:patient)"),
  list(name = "alliance_growth", data = "sessions",
       formula = paste("alliance ~ session_c + therapy + session_c:therapy + condition + session_c:condition + expectancy_c",
                       "+ (1 | therapist) + (1 | therapist:patient)")),
  list(name = "same_session", data = "sessions",
       formula = "symptoms ~ alliance_within_patient + alliance_between_patient + session_c + (1 + alliance_within_patient | patient)"),
  list(name = "lagged_alliance_symptoms", data = "sessions",
       formula = "symptoms_next ~ alliance_within_patient + alliance_between_patient + symptoms + session_c + (1 + alliance_within_patient | patient)"),
  list(name = "lagged_symptoms_alliance", data = "sessions",
       formula = "alliance_next ~ symptoms_within_patient + symptoms_between_patient + alliance + session_c + (1 + symptoms_within_patient | patient)"),
  list(name = "three_level", data = "sessions",
       formula = paste("symptoms_next ~ alliance_within_patient + alliance_patient_within_therapist + alliance_between_therapist",
                       "+ symptoms + session_c +", three_level_corr_re)),
  list(name = "early_alliance", data = "patients", formula = "symptoms_last ~ symptoms_baseline_c + alliance_s3 + (1 | therapist)"),
  list(name = "early_alliance_early_change", data = "patients",
       formula = "symptoms_last ~ symptoms_baseline_c + symptoms_change_s3 + alliance_s3 + (1 | therapist)"),
  list(name = "early_alliance_mean", data = "patients", formula = "symptoms_last ~ symptoms_baseline_c + alliance_s1_4 + (1 | therapist)"),
  list(name = "baldwin", data = "patients",
       formula = "symptoms_last ~ symptoms_baseline_c + alliance_cwt + alliance_tm_c + (1 | therapist)"),
  list(name = "moderation", data = "sessions", formula = paste("symptoms ~", moderation_fixed, "+", three_level_re))
)
# the lagged specifications without the raw lagged outcome (config/config.yaml, models, item 7)
lagged_forward <- "alliance_within_patient + alliance_between_patient + symptoms_within_patient + symptoms_between_patient"
lagged_reverse <- "symptoms_within_patient + symptoms_between_patient + alliance_within_patient + alliance_between_patient"
models <- c(models, list(
  list(name = "lagged_centred_alliance_symptoms", data = "sessions", best_of_two = TRUE,
       formula = paste("symptoms_next ~", lagged_forward, "+ session_c + (1 + alliance_within_patient | patient)")),
  list(name = "lagged_centred_symptoms_alliance", data = "sessions", best_of_two = TRUE,
       formula = paste("alliance_next ~", lagged_reverse, "+ session_c + (1 + symptoms_within_patient | patient)")),
  list(name = "lagged_detrended_alliance_symptoms", data = "sessions", best_of_two = TRUE,
       formula = paste("symptoms_next ~", sub("alliance_within_patient", "alliance_within_patient_detrended", lagged_forward),
                       "+ session_c + (1 + alliance_within_patient_detrended | patient)")),
  list(name = "lagged_detrended_symptoms_alliance", data = "sessions", best_of_two = TRUE,
       formula = paste("alliance_next ~", sub("symptoms_within_patient", "symptoms_within_patient_detrended", lagged_reverse),
                       "+ session_c + (1 + symptoms_within_patient_detrended | patient)")),
  list(name = "lagged_rowmeans_alliance_symptoms", data = "sessions", best_of_two = TRUE, model_rows = TRUE,
       formula = paste("symptoms_next ~", lagged_forward, "+ session_c + (1 + alliance_within_patient | patient)")),
  list(name = "lagged_rowmeans_symptoms_alliance", data = "sessions", best_of_two = TRUE, model_rows = TRUE,
       formula = paste("alliance_next ~", lagged_reverse, "+ session_c + (1 + symptoms_within_patient | patient)"))
))
# the stratified model without moderators: every patient, then each therapy x condition stratum
stratum_formula <- paste("symptoms ~ alliance_within_patient + alliance_between_patient + session_c +", three_level_re)
models[[length(models) + 1]] <- list(name = "moderation_stratum_all", data = "sessions", formula = stratum_formula)
for (th in factor_levels$therapy) {
  for (co in factor_levels$condition) {
    models[[length(models) + 1]] <- list(
      name = paste0("moderation_stratum_", tolower(th), "-", tolower(co)), data = "sessions",
      formula = stratum_formula, therapy = th, condition = co
    )
  }
}

r2_mumin <- function(fit) {
  X <- model.matrix(fit)
  var_f <- var(as.vector(X %*% fixef(fit)))
  frame <- model.frame(fit)
  n <- nrow(X)
  var_r <- 0
  for (vc in VarCorr(fit)) {
    terms <- rownames(vc)
    Z <- sapply(terms, function(t) if (t == "(Intercept)") rep(1, n) else frame[[t]])
    Z <- matrix(Z, nrow = n)
    var_r <- var_r + sum(rowSums((Z %*% as.matrix(vc)) * Z)) / n
  }
  var_e <- sigma(fit)^2
  total <- var_f + var_r + var_e
  list(r2_marginal = var_f / total, r2_conditional = (var_f + var_r) / total,
       var_fixed = var_f, var_random = var_r, var_residual = var_e)
}

# the lagged variants sit on the boundary (patient intercept SD 0, correlation -1), where nloptwrap
# can stop 1e-4 short of the REML optimum; fitted with BOBYQA too, the higher log-likelihood is kept
bobyqa_ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5, rhoend = 1e-10), calc.derivs = TRUE,
                           check.conv.singular = .makeCC(action = "ignore", tol = 1e-4))
reference <- function(m, d) {
  fit <- lmerTest::lmer(as.formula(m$formula), data = d, REML = TRUE, control = ctrl)
  best_of_two <- isTRUE(m$best_of_two)
  winner <- "nloptwrap"
  if (best_of_two) {
    other <- lmerTest::lmer(as.formula(m$formula), data = d, REML = TRUE, control = bobyqa_ctrl)
    if (as.numeric(logLik(other)) > as.numeric(logLik(fit))) {
      fit <- other
      winner <- "bobyqa"
    }
  }
  m$best_of_two <- NULL
  V <- as.matrix(vcov(fit))
  fixed <- fixed_rows(fit, py_term)
  varcor <- varcor_rows(fit)
  ll <- logLik(fit)
  out <- list(
    name = m$name,
    data = m$data,
    subset = if (is.null(m$therapy)) NULL else list(therapy = m$therapy, condition = m$condition),
    formula = m$formula,
    method = "REML",
    n_obs = nobs(fit),
    n_groups = as.list(ngrps(fit)),
    loglik = as.numeric(ll),
    df_loglik = attr(ll, "df"),
    sigma2 = sigma(fit)^2,
    theta = I(unname(getME(fit, "theta"))),
    is_singular = isSingular(fit, tol = 1e-4),
    convergence_messages = as.list(fit@optinfo$conv$lme4$messages),
    fixed = fixed,
    vcov_fixed = unname(V),
    vcov_terms = I(vapply(colnames(V), py_term, "")),
    varcor = varcor,
    r2 = r2_mumin(fit),
    software = software_info()
  )
  if (best_of_two) {
    out$software$optimizer <- paste("the higher REML log-likelihood of nloptwrap and bobyqa (rhoend 1e-10):", winner)
  }
  write_reference(out, outdir, m$name)
}

for (m in models) {
  d <- if (m$data == "sessions") sessions else patients
  if (!is.null(m$therapy)) d <- d[d$therapy == m$therapy & d$condition == m$condition, ]
  if (isTRUE(m$model_rows)) d <- from_model_rows(d, m$formula)
  m$model_rows <- NULL
  m$name <- paste0("demo_", m$name)
  reference(m, d)
}

# --- real data, pre/post: MASS::anorexia (Hand et al. 1993, data set 285, via Venables & Ripley 2002; GPL-2 | GPL-3)
# Weight (lb) of 72 young women with anorexia before and after treatment: cognitive behavioural
# therapy (CBT), family therapy (FT) or control (Cont).  Long format, one row per patient and
# occasion: weight ~ post * treat + (1 | patient), control as reference.
if (requireNamespace("MASS", quietly = TRUE)) {
  an <- MASS::anorexia
  ids <- sprintf("A%02d", seq_len(nrow(an)))
  long <- data.frame(
    patient = rep(ids, 2), session = rep(c(1L, 2L), each = nrow(an)), post = rep(c(0L, 1L), each = nrow(an)),
    treat = rep(as.character(an$Treat), 2), weight = c(an$Prewt, an$Postwt), stringsAsFactors = FALSE
  )
  if (!is.null(export_anorexia)) write.csv(long, export_anorexia, row.names = FALSE)
  long$treat <- relevel(factor(long$treat), ref = "Cont")
  factor_levels <- list(treat = c("Cont", "CBT", "FT"))
  reference(list(name = "anorexia_prepost", data = "anorexia.csv", formula = "weight ~ post + treat + post:treat + (1 | patient)"),
            long)
}
