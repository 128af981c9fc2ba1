"""Storage: SQLAlchemy 2.0 models, the engine and session factory, migrations and query functions.

Nothing here knows about HTTP. Query functions take the session as their first argument; the caller (the request
middleware, or a context manager in the CLI) owns the session's lifetime.
"""
