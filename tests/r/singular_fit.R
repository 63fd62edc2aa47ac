# lme4 / lmerTest / lm reference of the singular-fit policy, for tests/models/test_singular_fits.py.
#
# Usage (from the repository root):
#   Rscript tests/r/singular_fit.R tests/data/boundary.csv tests/data/singular_patients.csv <out.csv>
#
# Two models whose therapist variance REML estimates at 0 (both datasets are simulated with none):
#   sessions: y ~ x_cwc + x_tm_c + session_c + (1 | therapist) + (1 + x_cwc | therapist:patient)
#             simplified (the therapist level dropped): y ~ ... + (1 + x_cwc | therapist:patient)
#   patients: y ~ x + z + (1 | therapist); simplified (no level left): lm(y ~ x + z)
# For each fit: isSingular, the REML log-likelihood, the fixed effects with SE, lmerTest's
# Satterthwaite df (lm: the residual df) and p, and the variance components. The therapist-level
# predictor of each simplified fit (x_tm_c, z) is also tested on the between-therapist df,
# n_therapists - 1 - 1 (one fixed effect constant within therapists), the df the policy uses
# (rows with fit "simplified_between_df").

suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 3) stop("usage: Rscript tests/r/singular_fit.R <sessions.csv> <patients.csv> <out.csv>")
sessions <- read.csv(args[[1]], stringsAsFactors = FALSE)
patients <- read.csv(args[[2]], stringsAsFactors = FALSE)
ctrl <- lmerControl(check.conv.singular = "ignore")

fixed_rows <- function(dataset, fit_name, coefs, df, singular, loglik) {
  data.frame(dataset = dataset, fit = fit_name, kind = "fixed", group = "", term = rownames(coefs),
             estimate = coefs[, "Estimate"], se = coefs[, "Std. Error"], df = df,
             p = 2 * pt(-abs(coefs[, "Estimate"] / coefs[, "Std. Error"]), df),
             singular = singular, loglik = loglik, stringsAsFactors = FALSE)
}

variance_rows <- function(dataset, fit_name, f, singular, loglik) {
  vc <- as.data.frame(VarCorr(f))
  vc <- vc[is.na(vc$var2), ]
  data.frame(dataset = dataset, fit = fit_name, kind = "variance", group = vc$grp,
             term = ifelse(is.na(vc$var1), "Residual", vc$var1), estimate = vc$vcov, se = NA, df = NA, p = NA,
             singular = singular, loglik = loglik, stringsAsFactors = FALSE)
}

lmer_rows <- function(dataset, fit_name, formula, data) {
  f <- lmer(formula, data = data, REML = TRUE, control = ctrl)
  co <- summary(f, ddf = "Satterthwaite")$coefficients
  s <- isSingular(f)
  ll <- as.numeric(logLik(f))
  rbind(fixed_rows(dataset, fit_name, co, co[, "df"], s, ll), variance_rows(dataset, fit_name, f, s, ll))
}

between_rows <- function(rows, term, n_therapists) {
  r <- rows[rows$kind == "fixed" & rows$term == term, ]
  r$fit <- "simplified_between_df"
  r$df <- n_therapists - 1 - 1
  r$p <- 2 * pt(-abs(r$estimate / r$se), r$df)
  r
}

out <- rbind(
  lmer_rows("sessions", "as_specified",
            y ~ x_cwc + x_tm_c + session_c + (1 | therapist) + (1 + x_cwc | therapist:patient), sessions),
  lmer_rows("patients", "as_specified", y ~ x + z + (1 | therapist), patients)
)
simple_sessions <- lmer_rows("sessions", "simplified", y ~ x_cwc + x_tm_c + session_c + (1 + x_cwc | therapist:patient), sessions)
lm_fit <- lm(y ~ x + z, data = patients)
lm_ll <- as.numeric(logLik(lm_fit, REML = TRUE))
simple_patients <- rbind(
  fixed_rows("patients", "simplified", summary(lm_fit)$coefficients, lm_fit$df.residual, FALSE, lm_ll),
  data.frame(dataset = "patients", fit = "simplified", kind = "variance", group = "Residual", term = "Residual",
             estimate = summary(lm_fit)$sigma^2, se = NA, df = NA, p = NA, singular = FALSE, loglik = lm_ll)
)
out <- rbind(out, simple_sessions, simple_patients,
             between_rows(simple_sessions, "x_tm_c", length(unique(sessions$therapist))),
             between_rows(simple_patients, "z", length(unique(patients$therapist))))
out$term[out$term == "(Intercept)"] <- "Intercept"
write.csv(out, args[[3]], row.names = FALSE)
cat("lme4", as.character(packageVersion("lme4")), "lmerTest", as.character(packageVersion("lmerTest")), "\n")
