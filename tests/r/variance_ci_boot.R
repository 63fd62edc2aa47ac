# lme4's parametric bootstrap of variance components and ICCs, for tests/models/test_variance_ci.py.
#
# Usage (from the repository root):
#   Rscript tests/r/variance_ci_boot.R <data.csv> <nsim> <seed> <out.csv>
#
# Fits y ~ x_cwc + (1 | therapist) + (1 | therapist:patient) by REML to <data.csv>
# (tests/data/three_level.csv) and runs bootMer(type = "parametric", use.u = FALSE: new random
# effects every replicate, as alliance.models.variance_ci) with <nsim> replicates. For each quantity:
# the estimate, the 2.5th and 97.5th percentiles (quantile type 7), mean and SD over the
# replicates. Quantities: SDs of both levels and the residual, the therapist ICC and the cumulative
# patient ICC (therapist + patient intercept variance over the total).

suppressPackageStartupMessages(library(lme4))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 4) stop("usage: Rscript tests/r/variance_ci_boot.R <data.csv> <nsim> <seed> <out.csv>")
d <- read.csv(args[[1]], stringsAsFactors = TRUE)
nsim <- as.integer(args[[2]])
seed <- as.integer(args[[3]])

fit <- lmer(y ~ x_cwc + (1 | therapist) + (1 | therapist:patient), data = d, REML = TRUE)

quantities <- function(f) {
  vc <- as.data.frame(VarCorr(f))
  v_t <- vc$vcov[vc$grp == "therapist"]
  v_p <- vc$vcov[vc$grp == "therapist:patient"]
  v_e <- vc$vcov[vc$grp == "Residual"]
  total <- v_t + v_p + v_e
  c(sd_therapist = sqrt(v_t), sd_patient = sqrt(v_p), sd_residual = sqrt(v_e),
    icc_therapist = v_t / total, icc_cumulative_patient = (v_t + v_p) / total)
}

boot <- bootMer(fit, quantities, nsim = nsim, seed = seed, type = "parametric", use.u = FALSE)
out <- data.frame(
  quantity = names(boot$t0),
  estimate = unname(boot$t0),
  ci_low = apply(boot$t, 2, quantile, probs = 0.025, type = 7, na.rm = TRUE),
  ci_high = apply(boot$t, 2, quantile, probs = 0.975, type = 7, na.rm = TRUE),
  boot_mean = colMeans(boot$t, na.rm = TRUE),
  boot_se = apply(boot$t, 2, sd, na.rm = TRUE),
  nsim = nsim
)
write.csv(out, args[[4]], row.names = FALSE)
cat("lme4", as.character(packageVersion("lme4")), ": bootMer with", nsim, "replicates\n")
