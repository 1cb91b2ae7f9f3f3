"""Storage: the database engine and sessions, the models, the schema (Alembic), stored files."""
