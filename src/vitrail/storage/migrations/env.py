"""Alembic environment: runs the migrations on the connection Vitrail hands over.

:func:`vitrail.storage.database.upgrade` opens a transaction on its async engine
and passes the sync face of that connection in ``config.attributes["connection"]``
(the "connection sharing" recipe of the Alembic cookbook). There is no
alembic.ini and no URL here, so the migrations always run with the engine
settings Vitrail uses (SQLite pragmas, MariaDB charset, pool options).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from vitrail.storage.migrations import VERSION_TABLE
from vitrail.storage.models import metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    if context.is_offline_mode():
        raise RuntimeError("Vitrail's migrations run online only, through vitrail.storage.upgrade()")
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "no database connection in config.attributes['connection']: "
            "run the migrations with vitrail.storage.upgrade(engine)"
        )
    run_migrations(connection)


# Alembic executes this file under a name of its own; an ordinary import (documentation
# tools, import checks) has no migration context and must not run anything.
if __name__ != "vitrail.storage.migrations.env":
    main()
