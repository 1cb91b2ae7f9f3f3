"""motcua engine: models, SpiffWorkflow runtime wrapper, calendar and use cases (no Flask)."""
