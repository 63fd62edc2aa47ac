# Shared by tests/r/lme4_reference.R and tests/r/demo_suite.R: the fitting control and the parts
# of a reference file that both write (fixed effects with Satterthwaite df, variance components,
# software versions, the JSON writer).  Sourced after lme4, lmerTest and jsonlite are loaded.

# tight optimiser tolerances, so that the references are accurate well beyond the test tolerances
tight_control <- function(...) {
  lmerControl(
    optimizer = "nloptwrap",
    optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 1e-12, ftol_rel = 1e-14, maxeval = 1e5),
    calc.derivs = TRUE,
    ...
  )
}

# lme4's "(Intercept)" as the pipeline names it
plain_term <- function(term) sub("^\\(Intercept\\)$", "Intercept", term)

# one list per fixed effect: estimate, SE, Satterthwaite df, t and p (lmerTest)
fixed_rows <- function(fit, term_name = plain_term) {
  co <- summary(fit)$coefficients
  lapply(seq_len(nrow(co)), function(k) list(
    term = term_name(rownames(co)[k]),
    estimate = unname(co[k, "Estimate"]),
    se = unname(co[k, "Std. Error"]),
    df_satterthwaite = unname(co[k, "df"]),
    t = unname(co[k, "t value"]),
    p_satterthwaite = unname(co[k, "Pr(>|t|)"])
  ))
}

# one list per row of as.data.frame(VarCorr(fit)): variances, covariances (with their correlation)
varcor_rows <- function(fit) {
  vc <- as.data.frame(VarCorr(fit))
  lapply(seq_len(nrow(vc)), function(k) list(
    grp = vc$grp[k],
    var1 = if (is.na(vc$var1[k])) NULL else plain_term(vc$var1[k]),
    var2 = if (is.na(vc$var2[k])) NULL else plain_term(vc$var2[k]),
    vcov = vc$vcov[k],
    sdcor = vc$sdcor[k]
  ))
}

software_info <- function() {
  list(
    R = R.version.string,
    lme4 = as.character(packageVersion("lme4")),
    lmerTest = as.character(packageVersion("lmerTest")),
    optimizer = "nloptwrap (BOBYQA), xtol_abs 1e-12, ftol_abs 1e-14"
  )
}

write_reference <- function(out, outdir, name) {
  writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null", na = "null"),
             file.path(outdir, paste0(name, ".json")))
}
