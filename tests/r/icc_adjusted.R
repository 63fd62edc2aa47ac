# Nakagawa's adjusted ICC of random-slope models, by hand from lme4 and (when installed) from
# performance::icc, for tests/models/test_icc_definitions.py.
#
# Usage (from the repository root):
#   Rscript tests/r/icc_adjusted.R <demo_analysis.csv> <out.csv>
#
# Models (REML):
#   same_session: symptoms ~ alliance_within_patient + alliance_between_patient + session_c
#                 + (1 + alliance_within_patient | patient)
#   three_level:  the same fixed part + (1 | therapist) + (1 + alliance_within_patient | therapist:patient)
# both on tests/data/demo_analysis.csv (rows with every variable), neither singular.
# Quantities, by hand from VarCorr() and the model matrix of each random term (Johnson 2014: a
# group's random-effect variance is the mean over the fitted rows of z' Sigma z, z = (1, slopes)):
#   var_random     sum over groups of mean(z' Sigma z)
#   var_residual   sigma^2
#   icc_adjusted   var_random / (var_random + var_residual)    (Nakagawa, Johnson & Schielzeth 2017)
#   icc_at_zero:<group>  intercept variance of <group> / (intercept variances + residual): the ICC at
#                  the slope variables' zero
# and, when the performance package is installed, performance_icc_adjusted (performance::icc's
# ICC_adjusted), which must equal icc_adjusted (the script stops otherwise).

suppressPackageStartupMessages(library(lme4))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 2) stop("usage: Rscript tests/r/icc_adjusted.R <demo_analysis.csv> <out.csv>")
demo <- read.csv(args[[1]], stringsAsFactors = FALSE)

by_hand <- function(fit) {
  vc <- VarCorr(fit)
  frame <- model.frame(fit)
  var_random <- 0
  for (g in names(vc)) {
    S <- as.matrix(vc[[g]])
    terms <- colnames(S)
    Z <- sapply(terms, function(t) if (t == "(Intercept)") rep(1, nrow(frame)) else frame[[t]])
    Z <- matrix(Z, nrow = nrow(frame))
    var_random <- var_random + mean(rowSums((Z %*% S) * Z))
  }
  var_residual <- sigma(fit)^2
  intercepts <- sapply(names(vc), function(g) as.matrix(vc[[g]])["(Intercept)", "(Intercept)"])
  out <- c(var_random = var_random, var_residual = var_residual,
           icc_adjusted = var_random / (var_random + var_residual))
  at_zero <- intercepts / (sum(intercepts) + var_residual)
  names(at_zero) <- paste0("icc_at_zero:", names(vc))
  c(out, at_zero)
}

fits <- list(
  same_session = lmer(symptoms ~ alliance_within_patient + alliance_between_patient + session_c +
                        (1 + alliance_within_patient | patient), data = demo, REML = TRUE),
  three_level = lmer(symptoms ~ alliance_within_patient + alliance_between_patient + session_c + (1 | therapist) +
                       (1 + alliance_within_patient | therapist:patient), data = demo, REML = TRUE)
)
have_performance <- requireNamespace("performance", quietly = TRUE)
rows <- list()
for (nm in names(fits)) {
  q <- by_hand(fits[[nm]])
  if (have_performance) {
    p <- suppressWarnings(performance::icc(fits[[nm]]))$ICC_adjusted
    if (abs(p - q[["icc_adjusted"]]) > 1e-8) stop(nm, ": performance::icc ", p, " != by hand ", q[["icc_adjusted"]])
    q <- c(q, performance_icc_adjusted = p)
  }
  rows[[nm]] <- data.frame(model = nm, quantity = names(q), value = unname(q), n_obs = nobs(fits[[nm]]))
}
for (nm in names(fits)) if (isSingular(fits[[nm]])) stop(nm, ": singular fit")
write.csv(do.call(rbind, rows), args[[2]], row.names = FALSE)
cat("lme4", as.character(packageVersion("lme4")),
    if (have_performance) paste("performance", as.character(packageVersion("performance"))) else "(no performance package)",
    "\n")
