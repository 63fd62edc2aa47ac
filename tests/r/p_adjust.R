# R's p.adjust (stats) for tests/models/test_multiplicity.py: Holm and Benjamini-Hochberg adjusted p.
#
# Usage (from the repository root):
#   Rscript tests/r/p_adjust.R <in.csv> <out.csv>
#
# <in.csv> has the columns family and p (p may be NA: a test that was not made); each family is
# adjusted on its own, NA p left NA and not counted in the family's size (p.adjust's n = number of
# non-NA p, its default). <out.csv> adds p_holm and p_bh, written with 17 significant digits.
# Committed output for tests/data/multiplicity_p.csv: tests/reference/multiplicity_p_adjust.csv.

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 2) stop("usage: Rscript tests/r/p_adjust.R <in.csv> <out.csv>")
d <- read.csv(args[[1]], stringsAsFactors = FALSE)
d$p_holm <- NA_real_
d$p_bh <- NA_real_
for (family in unique(d$family)) {
  rows <- d$family == family
  d$p_holm[rows] <- p.adjust(d$p[rows], method = "holm")
  d$p_bh[rows] <- p.adjust(d$p[rows], method = "BH")
}
for (column in c("p", "p_holm", "p_bh")) d[[column]] <- ifelse(is.na(d[[column]]), "", sprintf("%.17g", d[[column]]))
write.csv(d, args[[2]], row.names = FALSE, quote = FALSE)
cat("R", R.version$major, ".", R.version$minor, ": p.adjust of", nrow(d), "p values in",
    length(unique(d$family)), "families\n")
