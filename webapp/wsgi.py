"""WSGI entry point for gunicorn: `gunicorn webapp.wsgi:app`."""
from engine import config
from webapp import create_app

config.audit_key()   # refuse to start, not to write: a PostgreSQL instance without its audit key stops here
app = create_app()
