"""Intake stage: read a lab's export, screen identifiers, validate, score, derive."""
