# metafor reference values for tests/pooling/test_meta.py (alliance.pooling.meta).
#
# Usage (from the repository root):
#   Rscript tests/r/metafor_reference.R <out_dir> [--export-bcg <csv path>]
#
# Writes four CSV files into <out_dir> (committed copies: tests/reference/metafor/), every number
# with 17 significant digits:
#   random_effects.csv     rma(yi, vi, method = "REML") with test = "knha" and test = "z", one row
#                          per dataset and test: estimate, SE, t/z, p, CI, tau^2, tau, I^2, H^2,
#                          Q with df and p, and predict()'s prediction interval
#   weights.csv            weights(fit) in percent, one row per dataset and study
#   meta_regression.csv    rma(yi, vi, mods = ~ ..., method = "REML", test = "knha") of dat.bcg with
#                          mods ~ ablat, ~ ablat + year and ~ alloc (a factor, reference level
#                          "alternate"): a row per coefficient (kind "coef": estimate, SE, t, df, p,
#                          CI) and a row per model (kind "fit": residual tau^2, I^2, H^2, R^2 in
#                          percent, QM with its F df and p, QE with df and p)
#   leave_one_out.csv      leave1out() of each knha fit, and predict()'s prediction interval of
#                          the same refit (leave1out itself does not give one)
# Every fit is made twice, with metafor's default control (Fisher scoring stops when tau^2 changes by
# less than threshold = 1e-5) and with threshold = 1e-10 (column threshold): the default stops short
# of the REML optimum by up to 7e-6 in tau^2 (dat.bcg, mods ~ ablat), and so by 1e-4 in a
# coefficient, more than the tests' tolerance of 1e-6; alliance.pooling.meta, whose default is 1e-10,
# is held to both (its tol = 1e-5 repeats metafor's default iterations).
#
# Datasets:
#   bcg          dat.bcg (metadat): 13 trials of the BCG vaccine against tuberculosis, log risk
#                ratios by escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg).
#                Colditz GA, Brewer TF, Berkey CS, et al. (1994). Efficacy of BCG vaccine in the
#                prevention of tuberculosis. JAMA 271, 698-702. Distributed with the R package
#                metadat (GPL >= 2). With --export-bcg the effect sizes and moderators are also
#                written to that CSV path (committed copy: tests/data/dat_bcg.csv).
#   homogeneous  tests/data/meta_homogeneous.csv: six made-up studies whose estimates scatter less
#                than their sampling variances allow (Q < k - 1), so that REML's tau^2 is 0.

suppressPackageStartupMessages(library(metafor))

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 1) stop("usage: Rscript tests/r/metafor_reference.R <out_dir> [--export-bcg <csv>]")
out_dir <- args[[1]]
export_csv <- NULL
i <- match("--export-bcg", args)
if (!is.na(i)) {
  if (length(args) < i + 1) stop("--export-bcg needs a path")
  export_csv <- args[[i + 1]]
}
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

script_arg <- grep("^--file=", commandArgs(trailingOnly = FALSE), value = TRUE)
script_dir <- if (length(script_arg)) dirname(normalizePath(sub("^--file=", "", script_arg[[1]]))) else "tests/r"
data_dir <- normalizePath(file.path(script_dir, "..", "data"))

bcg <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg)
bcg <- data.frame(trial = bcg$trial, author = bcg$author, year = bcg$year, ablat = bcg$ablat,
                  alloc = bcg$alloc, yi = as.numeric(bcg$yi), vi = as.numeric(bcg$vi),
                  stringsAsFactors = FALSE)
bcg$label <- paste0(bcg$trial, ": ", bcg$author, " ", bcg$year)
homogeneous <- read.csv(file.path(data_dir, "meta_homogeneous.csv"), stringsAsFactors = FALSE)
homogeneous$label <- homogeneous$study
datasets <- list(bcg = bcg, homogeneous = homogeneous)

num <- function(x) ifelse(is.na(x), "", sprintf("%.17g", x))
write_csv <- function(d, path) {
  text <- which(sapply(d, is.character))  # quoted (labels hold spaces and '&'); numbers are not
  for (column in names(d)) if (is.numeric(d[[column]])) d[[column]] <- num(d[[column]])
  write.csv(d, path, row.names = FALSE, quote = if (length(text)) unname(text) else FALSE)
}
write_table <- function(d, file) write_csv(d, file.path(out_dir, file))

if (!is.null(export_csv)) {
  write_csv(bcg[, c("trial", "author", "year", "ablat", "alloc", "yi", "vi")], export_csv)
}

# one row of a fitted rma: the pooled (intercept-only) estimate and its heterogeneity statistics
pooled_row <- function(fit) {
  pr <- predict(fit)
  data.frame(k = fit$k, estimate = as.numeric(fit$beta), se = fit$se, statistic = fit$zval,
             df = if (fit$test == "knha") fit$ddf else Inf, p = fit$pval, ci_low = fit$ci.lb,
             ci_high = fit$ci.ub, tau2 = fit$tau2, tau = sqrt(fit$tau2), i2 = fit$I2, h2 = fit$H2,
             q = fit$QE, q_df = fit$k - fit$p, q_p = fit$QEp, pi_low = pr$pi.lb, pi_high = pr$pi.ub)
}

thresholds <- c(1e-5, 1e-10)  # metafor's default, and tight
fits <- list()
weights_rows <- list()
for (threshold in thresholds) for (name in names(datasets)) {
  d <- datasets[[name]]
  ctrl <- list(threshold = threshold)
  for (test in c("knha", "z")) {
    fit <- rma(yi, vi, data = d, method = "REML", test = test, control = ctrl)
    id <- data.frame(threshold = sprintf("%g", threshold), dataset = name, test = test)
    fits[[length(fits) + 1]] <- cbind(id, pooled_row(fit))
    if (test == "knha") {
      weights_rows[[length(weights_rows) + 1]] <- data.frame(
        threshold = sprintf("%g", threshold), dataset = name, label = d$label, weight = unname(weights(fit)))
    }
  }
}
write_table(do.call(rbind, fits), "random_effects.csv")
write_table(do.call(rbind, weights_rows), "weights.csv")

# metafor's term names as the pipeline writes them: Intercept, a numeric column, alloc[T.level]
term_name <- function(term) {
  term <- sub("^intrcpt$", "Intercept", term)
  sub("^alloc(.+)$", "alloc[T.\\1]", term)
}
regressions <- list(ablat = ~ ablat, ablat_year = ~ ablat + year, alloc = ~ alloc)
coef_rows <- list()
fit_rows <- list()
for (threshold in thresholds) for (name in names(regressions)) {
  fit <- rma(yi, vi, mods = regressions[[name]], data = bcg, method = "REML", test = "knha",
             control = list(threshold = threshold))
  id <- data.frame(threshold = sprintf("%g", threshold), model = name)
  coef_rows[[length(coef_rows) + 1]] <- cbind(id, data.frame(
    kind = "coef", term = term_name(rownames(fit$beta)), estimate = as.numeric(fit$beta), se = fit$se,
    statistic = fit$zval, df = fit$ddf, p = fit$pval, ci_low = fit$ci.lb, ci_high = fit$ci.ub))
  fit_rows[[length(fit_rows) + 1]] <- cbind(id, data.frame(
    kind = "fit", term = "", k = fit$k, n_coef = fit$p, tau2 = fit$tau2, i2 = fit$I2, h2 = fit$H2, r2 = fit$R2,
    qm = fit$QM, qm_df1 = fit$QMdf[1], qm_df2 = fit$QMdf[2], qm_p = fit$QMp, qe = fit$QE,
    qe_df = fit$k - fit$p, qe_p = fit$QEp))
}
coefs <- do.call(rbind, coef_rows)
fit_stats <- do.call(rbind, fit_rows)
for (column in setdiff(names(fit_stats), names(coefs))) coefs[[column]] <- NA_real_
for (column in setdiff(names(coefs), names(fit_stats))) fit_stats[[column]] <- NA_real_
write_table(rbind(coefs, fit_stats[, names(coefs)]), "meta_regression.csv")

loo_rows <- list()
for (threshold in thresholds) for (name in names(datasets)) {
  d <- datasets[[name]]
  ctrl <- list(threshold = threshold)
  fit <- rma(yi, vi, data = d, method = "REML", test = "knha", control = ctrl)
  l1o <- leave1out(fit)
  pis <- t(sapply(seq_len(nrow(d)), function(j) {
    pr <- predict(rma(yi, vi, data = d[-j, ], method = "REML", test = "knha", control = ctrl))
    c(pr$pi.lb, pr$pi.ub)
  }))
  loo_rows[[length(loo_rows) + 1]] <- data.frame(
    threshold = sprintf("%g", threshold), dataset = name, label = d$label, k = fit$k - 1,
    estimate = l1o$estimate, se = l1o$se, statistic = l1o$tval, p = l1o$pval, ci_low = l1o$ci.lb,
    ci_high = l1o$ci.ub, q = l1o$Q, q_p = l1o$Qp, tau2 = l1o$tau2, i2 = l1o$I2, h2 = l1o$H2,
    pi_low = pis[, 1], pi_high = pis[, 2])
}
write_table(do.call(rbind, loo_rows), "leave_one_out.csv")

cat("R", R.version$major, ".", R.version$minor, ", metafor", as.character(packageVersion("metafor")),
    ": references written to", out_dir, "\n")
