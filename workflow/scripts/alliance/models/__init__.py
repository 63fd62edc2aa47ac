"""Model stage: the suite's config checks, model data, fits, moderation and effect sizes."""
