"""The Django database backend (ENGINE "wasmcorn.django") against the fake
host: Django's ORM, transactions and savepoints through wasmcorn.db."""

import pytest

django = pytest.importorskip("django")

from conftest import configure_django  # noqa: E402
from wasmcorn.testing import FakeHost  # noqa: E402

_host = FakeHost(databases=("default",))


def setup_module(_):
    global Item
    configure_django()
    _host.install()
    Item = _item()


def teardown_module(_):
    from django.db import connection

    connection.close()
    _host.uninstall()


def _item():
    from django.db import connection, models

    class Item(models.Model):
        name = models.CharField(max_length=40)
        created = models.DateTimeField(null=True)

        class Meta:
            app_label = "wctest"
            db_table = "item"

    with connection.cursor() as c:
        c.execute("CREATE TABLE item (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, created TEXT)")
    return Item


Item = None  # the model, made by setup_module once the fake host is installed


def test_orm_through_the_host():
    a = Item.objects.create(name="a%s")  # a literal %s in a value, not in SQL
    b = Item.objects.create(name="b")
    assert (a.pk, b.pk) == (1, 2)
    assert Item.objects.get(pk=1).name == "a%s"
    assert list(Item.objects.filter(name__startswith="b").values_list("id", flat=True)) == [2]
    assert Item.objects.count() == 2
    # The statements went through the host, not through a sqlite3 connection.
    assert any("INSERT INTO" in str(call) for call in _host.calls)


def test_atomic_commits_and_rolls_back():
    from django.db import transaction

    with transaction.atomic():
        Item.objects.create(name="c")
    assert Item.objects.filter(name="c").exists()
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            Item.objects.create(name="d")
            raise RuntimeError("roll back")
    assert not Item.objects.filter(name="d").exists()


def test_nested_atomic_uses_savepoints():
    from django.db import transaction

    with transaction.atomic():
        Item.objects.create(name="outer")
        try:
            with transaction.atomic():
                Item.objects.create(name="inner")
                raise ValueError
        except ValueError:
            pass
    assert Item.objects.filter(name="outer").exists()
    assert not Item.objects.filter(name="inner").exists()


def test_integrity_error_is_djangos():
    from django.db import IntegrityError, connection

    with pytest.raises(IntegrityError):
        with connection.cursor() as c:
            c.execute("INSERT INTO item (id, name) VALUES (%s, %s)", [1, "dup"])


def test_python_sql_functions_are_a_documented_limit():
    from django.db import DatabaseError

    # __month needs django_datetime_extract, a Python function Django registers
    # in SQLite; the host's database cannot call it (see base.py).
    with pytest.raises(DatabaseError, match="no such function: django_datetime_extract"):
        list(Item.objects.filter(created__month=1))
