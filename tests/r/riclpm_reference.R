# lavaan references for alliance.dynamics.riclpm (tests/dynamics/test_riclpm_lavaan.py).
#
#   Rscript tests/r/riclpm_reference.R tests/reference/riclpm [tests/data]
#
# Fits the standard RI-CLPM (Mulder & Hamaker 2021 syntax) with lavaan::sem(model, data,
# missing = "fiml") and lavaan's default options (observed information, no bounds, H1 by EM) to
# tests/data/riclpm_complete.csv (300 x 5, complete), tests/data/riclpm_dropout.csv (400 x 7,
# MAR dropout) and tests/data/riclpm_boundary.csv (300 x 5, negative var(RIy)); paths equal over
# waves ("constrained", labels a, b, c, d) and free per wave ("free"). The long-run effects
# (I - B)^-1 are defined parameters (:=), so their SEs are lavaan's delta method. Also: the
# chi-square difference test of the constraint (lavTestLRT), the constrained model on the
# dropout data with cluster = "therapist" (se = "robust.cluster"), and the H1 log-likelihood
# with a tighter EM (lavaan's EM stops at a change of 1e-5, which moves its chi-square in the
# 7th significant digit). All options are lavaan's defaults (nlminb, rel.tol 1e-10: tighter
# tolerances make nlminb report false convergence at the same estimates +- 1e-7).
# Writes one JSON file per fit into the directory given as the first argument; the data
# (tests/dynamics/riclpm_data.py) are read from the second (default tests/data).

suppressPackageStartupMessages({
  library(lavaan)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
outdir <- if (length(args) >= 1) args[1] else "tests/reference/riclpm"
datadir <- if (length(args) >= 2) args[2] else "tests/data"

riclpm_syntax <- function(K, constrained) {
  w <- seq_len(K)
  lines <- c(
    paste0("RIx =~ ", paste0("1*x", w, collapse = " + ")),
    paste0("RIy =~ ", paste0("1*y", w, collapse = " + ")),
    paste0("wx", w, " =~ 1*x", w),
    paste0("wy", w, " =~ 1*y", w)
  )
  for (t in 2:K) {
    lab <- if (constrained) c("a*", "b*", "c*", "d*") else c("", "", "", "")
    lines <- c(lines,
      sprintf("wx%d ~ %swx%d + %swy%d", t, lab[1], t - 1, lab[2], t - 1),
      sprintf("wy%d ~ %swx%d + %swy%d", t, lab[3], t - 1, lab[4], t - 1))
  }
  lines <- c(lines,
    paste0("wx", w, " ~~ wy", w),
    paste0("wx", w, " ~~ wx", w),
    paste0("wy", w, " ~~ wy", w),
    "RIx ~~ RIx", "RIy ~~ RIy", "RIx ~~ RIy",
    # sem() would correlate the exogenous latent variables (RIs and wave-1 components) by default
    "RIx ~~ 0*wx1 + 0*wy1", "RIy ~~ 0*wx1 + 0*wy1",
    paste0("x", w, " ~~ 0*x", w),
    paste0("y", w, " ~~ 0*y", w))
  if (constrained) {
    lines <- c(lines,
      "det := (1 - a)*(1 - d) - b*c",
      "lr_x_x := (1 - d)/((1 - a)*(1 - d) - b*c)",
      "lr_y_x := b/((1 - a)*(1 - d) - b*c)",
      "lr_x_y := c/((1 - a)*(1 - d) - b*c)",
      "lr_y_y := (1 - a)/((1 - a)*(1 - d) - b*c)")
  }
  paste(lines, collapse = "\n")
}

fit_one <- function(data, K, constrained, cluster = NULL) {
  model <- riclpm_syntax(K, constrained)
  caught <- character(0)
  fit <- withCallingHandlers(
    if (is.null(cluster)) {
      sem(model, data = data, missing = "fiml")
    } else {
      sem(model, data = data, missing = "fiml", cluster = cluster)
    },
    warning = function(w) {
      caught <<- c(caught, gsub("\\s+", " ", conditionMessage(w)))
      invokeRestart("muffleWarning")
    })
  attr(fit, "caught_warnings") <- caught
  fit
}

tight_h1_logl <- function(fit, data, K) {
  Y <- as.matrix(data[, c(paste0("x", seq_len(K)), paste0("y", seq_len(K)))])
  Y <- Y[rowSums(!is.na(Y)) > 0, , drop = FALSE]
  h1 <- lavaan:::lav_mvnorm_missing_h1_estimate_moments(Y = Y, tol = 1e-13, max.iter = 100000L)
  lavaan:::lav_mvnorm_missing_loglik_data(Y = Y, Mu = h1$Mu, Sigma = h1$Sigma)
}

describe <- function(fit, data, K, name, file, constrained, cluster = NULL) {
  pe <- parameterEstimates(fit, standardized = TRUE, remove.nonfree = FALSE)
  keep <- pe$op == ":=" | lavaan::parTable(fit)$free[seq_len(nrow(pe))] > 0
  pe <- pe[keep, ]
  rows <- lapply(seq_len(nrow(pe)), function(k) list(
    lhs = pe$lhs[k], op = pe$op[k], rhs = pe$rhs[k], label = pe$label[k],
    est = pe$est[k], se = pe$se[k], z = pe$z[k], pvalue = pe$pvalue[k],
    ci_lower = pe$ci.lower[k], ci_upper = pe$ci.upper[k],
    std_all = if (pe$op[k] == ":=") NULL else pe$std.all[k]
  ))
  measures <- c("npar", "ntotal", "chisq", "df", "pvalue", "baseline.chisq", "baseline.df",
                "baseline.pvalue", "cfi", "tli", "logl", "unrestricted.logl", "aic", "bic", "bic2",
                "rmsea", "rmsea.ci.lower", "rmsea.ci.upper", "rmsea.pvalue", "srmr")
  fm <- fitMeasures(fit, measures)
  if (!is.null(cluster)) fm <- fitMeasures(fit, c("npar", "ntotal", "chisq", "df", "logl"))
  list(
    name = name,
    data = file,
    waves = K,
    constrained = constrained,
    cluster = cluster,
    converged = lavInspect(fit, "converged"),
    iterations = lavInspect(fit, "iterations"),
    max_abs_gradient = max(abs(lavInspect(fit, "gradient"))),
    se = lavInspect(fit, "options")$se,
    information = lavInspect(fit, "options")$information[1],
    observed_information = lavInspect(fit, "options")$observed.information[1],
    warnings = as.list(attr(fit, "caught_warnings")),
    parameters = rows,
    fit = as.list(unclass(fm)),
    h1_logl_tight_em = if (is.null(cluster)) tight_h1_logl(fit, data, K) else NULL,
    software = list(R = R.version.string, lavaan = as.character(packageVersion("lavaan")),
                    call = "lavaan::sem(model, data, missing = 'fiml')")
  )
}

write_json_file <- function(out, name) {
  writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null", na = "null"),
             file.path(outdir, paste0(name, ".json")))
}

# bench/bench_riclpm.py sources this file with RICLPM_SYNTAX_ONLY=1 for riclpm_syntax() only
if (!nzchar(Sys.getenv("RICLPM_SYNTAX_ONLY"))) {

dir.create(outdir, showWarnings = FALSE, recursive = TRUE)
datasets <- list(complete = list(file = "riclpm_complete.csv", K = 5L, variants = c("constrained", "free")),
                 dropout = list(file = "riclpm_dropout.csv", K = 7L, variants = c("constrained", "free")),
                 boundary = list(file = "riclpm_boundary.csv", K = 5L, variants = "constrained"))
for (dname in names(datasets)) {
  d <- datasets[[dname]]
  data <- read.csv(file.path(datadir, d$file))
  fits <- list()
  for (variant in d$variants) {
    constrained <- variant == "constrained"
    fit <- fit_one(data, d$K, constrained)
    fits[[variant]] <- fit
    name <- paste0(dname, "_", variant)
    write_json_file(describe(fit, data, d$K, name, d$file, constrained), name)
  }
  if (length(fits) < 2) next
  lrt <- lavTestLRT(fits$free, fits$constrained)
  write_json_file(list(
    name = paste0(dname, "_lrt"), data = d$file,
    chisq_diff = lrt[["Chisq diff"]][2], df_diff = lrt[["Df diff"]][2], pvalue = lrt[["Pr(>Chisq)"]][2],
    software = list(R = R.version.string, lavaan = as.character(packageVersion("lavaan")), call = "lavTestLRT(free, constrained)")
  ), paste0(dname, "_lrt"))
}

data <- read.csv(file.path(datadir, "riclpm_dropout.csv"))
fit <- fit_one(data, 7L, TRUE, cluster = "therapist")
write_json_file(describe(fit, data, 7L, "dropout_constrained_cluster", "riclpm_dropout.csv", TRUE, cluster = "therapist"),
                "dropout_constrained_cluster")

}  # end of the reference fits
