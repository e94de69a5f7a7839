"""hub-sql: a hub connector for PostgreSQL, MySQL/MariaDB and SQLite (SQLAlchemy).

The plugin module is :mod:`hub_sql.plugin` (entry point ``sql`` in the group ``hub``).
"""

__version__ = "0.1.0"
