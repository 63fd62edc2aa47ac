"""Pooling stage: individual-patient-data meta-analysis across studies: harmonisation, two-stage
pooling (random-effects meta-analysis of the studies' estimates: meta), one-stage model, multiverse."""
