# lmerTest's Satterthwaite t tests of contrasts and F tests of several coefficients (contest()),
# for tests/engines/test_contrast_ddf.py.
#
# Usage (from the repository root):
#   Rscript tests/r/contest_satterthwaite.R <three_level.csv> <out.csv>
#
# Data: tests/data/three_level.csv with a therapist-level arm derived from the therapist's number
# (T01 -> B, T02 -> C, T03 -> A, ...: number modulo 3 -> A, B, C), the same rule as the Python
# test.  Model (REML, a moderated three-level model with an independent random slope, the
# pipeline's moderation form):
#   y ~ x_cwc + x_pm_c + session_c + arm + x_cwc:arm + (1 | therapist) + (1 + x_cwc || therapist:patient)
# For each contrast (one row of L: contest(joint = FALSE)) and each joint test (several rows:
# contest(joint = TRUE)), with the coefficients named as the pipeline names them (arm[T.B]):
# name, kind (t or F), weights ("coefficient=weight;..." for t, the coefficients tested for F),
# estimate, se, statistic (t or F), df (t: Satterthwaite df; F: numerator df), df_denominator
# (F), p.

suppressPackageStartupMessages(library(lmerTest))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 2) stop("usage: Rscript tests/r/contest_satterthwaite.R <three_level.csv> <out.csv>")
d <- read.csv(args[[1]], stringsAsFactors = FALSE)
d$arm <- factor(c("A", "B", "C")[as.integer(sub("^T", "", d$therapist)) %% 3 + 1], levels = c("A", "B", "C"))
d$therapist <- factor(d$therapist)
d$patient <- factor(d$patient)

fit <- lmer(y ~ x_cwc + x_pm_c + session_c + arm + x_cwc:arm + (1 | therapist) + (1 + x_cwc || therapist:patient),
            data = d, REML = TRUE)
r_names <- names(fixef(fit))
py_name <- function(n) gsub("arm([ABC])", "arm[T.\\1]", n)
row_of <- function(weights) {
  L <- setNames(numeric(length(r_names)), r_names)
  L[names(weights)] <- unlist(weights)
  L
}

contrasts <- list(
  contextual = list(x_pm_c = 1, x_cwc = -1),
  slope_arm_B = list(x_cwc = 1, `x_cwc:armB` = 1),
  slope_arm_C = list(x_cwc = 1, `x_cwc:armC` = 1),
  slope_B_minus_C = list(`x_cwc:armB` = 1, `x_cwc:armC` = -1),
  session = list(session_c = 1)
)
joint <- list(
  arm = c("armB", "armC"),
  x_cwc_by_arm = c("x_cwc:armB", "x_cwc:armC"),
  alliance_block = c("x_cwc", "x_pm_c", "x_cwc:armB", "x_cwc:armC")
)

rows <- list()
for (nm in names(contrasts)) {
  w <- contrasts[[nm]]
  ct <- contest(fit, row_of(w), joint = FALSE)
  rows[[length(rows) + 1]] <- data.frame(
    name = nm, kind = "t",
    weights = paste0(py_name(names(w)), "=", unlist(w), collapse = ";"),
    estimate = ct$Estimate, se = ct[["Std. Error"]], statistic = ct[["t value"]], df = ct$df,
    df_denominator = NA_real_, p = ct[["Pr(>|t|)"]]
  )
}
for (nm in names(joint)) {
  coefs <- joint[[nm]]
  L <- t(sapply(coefs, function(cf) row_of(setNames(list(1), cf))))
  ft <- contest(fit, L, joint = TRUE)
  rows[[length(rows) + 1]] <- data.frame(
    name = nm, kind = "F", weights = paste(py_name(coefs), collapse = ";"),
    estimate = NA_real_, se = NA_real_, statistic = ft[["F value"]], df = ft$NumDF,
    df_denominator = ft$DenDF, p = ft[["Pr(>F)"]]
  )
}
out <- do.call(rbind, rows)
write.csv(out, args[[2]], row.names = FALSE)
cat("lmerTest", as.character(packageVersion("lmerTest")), "lme4", as.character(packageVersion("lme4")),
    ": contest() on", nrow(d), "rows\n")
