"""Command-line entry point package (console script `motcua`)."""
