"""Model stage: config checks (config), model data (data; person means from a model's rows and
detrended parts: person_means), engine specs (specs), fits (suite), the tables of a model's
directory (tables), effect sizes (effects), moderation and the summary of effects across the suite
(summary); the RI-CLPM as a model of the suite (riclpm_suite) and the recovery study of the lagged
specifications (lagged_recovery)."""
