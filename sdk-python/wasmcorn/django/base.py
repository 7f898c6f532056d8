"""Django's SQLite backend, talking to the host's SQL through wasmcorn.db.

The host's embedded database is SQLite, so Django's own sqlite3 backend
(operations, features, introspection, schema editor) is reused; only the
connection is replaced: statements, transactions and savepoints go through
wasmcorn.db (host calls) instead of the sqlite3 module, which the guest does
not have. Django's "format" placeholders are turned into qmark ones, as its
sqlite3 backend does.

Limits, each a consequence of SQL running in the host, not in this process:
- Django registers Python functions in SQLite (create_function) for date and
  time lookups and truncation (__year, __date, Trunc*, Extract*), __regex,
  LPAD/RPAD, SHA*/MD5, RAND and the STDDEV/VARIANCE aggregates. They cannot
  be registered in the host's database, so queries using them fail with "no
  such function".
- Only the SQLite driver: against a MySQL database Django would need its
  MySQL backend, which imports the mysqlclient C extension.
- PRAGMA statements (Django's constraint checks around fixtures and some
  migrations) reach one pooled connection, not all of them.
"""

import importlib.util
import sys
import types

from .. import db as Database

# The SQLite version the host links (go.mod's modernc.org/sqlite v1.61.1);
# sdk-python/pyplugin's end-to-end test checks it against the host's
# sqlite_version().
SQLITE_VERSION_INFO = (3, 54, 1)


def _sqlite3_stand_in():
    """A module standing in for sqlite3 while Django's sqlite3 backend is
    imported (it registers converters and subclasses sqlite3.Cursor at
    import time). Connecting through it is refused."""
    m = types.ModuleType("sqlite3")
    for name in ("Error", "Warning", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
                 "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError"):
        setattr(m, name, getattr(Database, name))
    m.Cursor = Database.Cursor
    m.Connection = Database.Connection
    # The SQLite of the host's driver (modernc.org/sqlite); Django derives
    # feature flags from it.
    m.sqlite_version_info = SQLITE_VERSION_INFO
    m.sqlite_version = ".".join(map(str, SQLITE_VERSION_INFO))
    m.PARSE_DECLTYPES, m.PARSE_COLNAMES = 1, 2
    m.register_converter = lambda *a: None
    m.register_adapter = lambda *a: None

    def connect(*a, **kw):
        raise Database.NotSupportedError("sqlite3 is not available in a wasmcorn plugin; use wasmcorn.db")

    m.connect = connect
    m.dbapi2 = m
    return m


def _import_sqlite3_backend():
    if importlib.util.find_spec("sqlite3") is not None:  # native Python
        from django.db.backends.sqlite3 import base
        return base
    stand_in = _sqlite3_stand_in()
    sys.modules["sqlite3"] = sys.modules["sqlite3.dbapi2"] = stand_in
    try:
        from django.db.backends.sqlite3 import base
    finally:
        # Only Django's backend keeps the stand-in: later "import sqlite3"
        # fails as it did before.
        del sys.modules["sqlite3"], sys.modules["sqlite3.dbapi2"]
    return base


_sqlite = _import_sqlite3_backend()


class CursorWrapper(Database.Cursor):
    """A wasmcorn.db cursor taking Django's "%s" placeholders."""

    def execute(self, query, params=None):
        if params is None:
            return super().execute(query)
        return super().execute(self.convert_query(query), params)

    def executemany(self, query, param_list):
        return super().executemany(self.convert_query(query), param_list)

    convert_query = _sqlite.SQLiteCursorWrapper.convert_query


class DatabaseWrapper(_sqlite.DatabaseWrapper):
    display_name = "SQLite (wasmcorn host)"
    Database = Database

    def get_connection_params(self):
        name = self.settings_dict["NAME"]
        if not name:
            from django.core.exceptions import ImproperlyConfigured
            raise ImproperlyConfigured("settings.DATABASES: NAME must name a database the plugin's manifest grants")
        return {"database": str(name)}

    def get_new_connection(self, conn_params):
        return Database.connect(conn_params["database"], autocommit=True)

    def create_cursor(self, name=None):
        return CursorWrapper(self.connection)

    def _set_autocommit(self, autocommit):
        with self.wrap_database_errors:
            self.connection.autocommit = autocommit

    def _start_transaction_under_autocommit(self):
        self.connection.begin()
