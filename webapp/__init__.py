"""Flask web app (HTML views and JSON API) built on engine/ use cases."""
