"""A minimal Django project whose ORM uses the host's SQL through the
wasmcorn.django backend, and whose cache framework uses the host's cache
through wasmcorn.django.cache (TestE2EPythonPlugins, "py-django-db").

    POST /py-django-db/notes?text=T         201 {"id", "text"}, in a transaction
    POST /py-django-db/notes?text=T&fail=1  500, the transaction rolled back
    GET  /py-django-db/notes                {"notes": [{"id", "text"}, ...]}
    GET  /py-django-db/notes?month=1        a lookup Django implements with a
                                            Python SQL function: 500 (see
                                            wasmcorn/django/base.py)
    GET  /py-django-db/sqlite               the host's SQLite version and the
                                            one the backend declares to Django
    POST /py-django-db/visits               {"visits": n, "last": {"n": n}}: a
                                            counter in Django's cache (add,
                                            incr) and a pickled value
"""

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="wasmcorn-test-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    USE_TZ=False,
    TIME_ZONE="UTC",
    DATABASES={"default": {"ENGINE": "wasmcorn.django", "NAME": "default"}},
    CACHES={"default": {"BACKEND": "wasmcorn.django.cache.HostCache"}},
)

import django  # noqa: E402

django.setup()

from django.core.cache import cache  # noqa: E402
from django.db import connection, models, transaction  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


class Note(models.Model):
    text = models.CharField(max_length=100)
    created = models.DateTimeField(null=True)

    class Meta:
        app_label = "notes"
        db_table = "django_notes"


def _create_table():
    with connection.cursor() as c:
        c.execute("CREATE TABLE IF NOT EXISTS django_notes "
                  "(id INTEGER PRIMARY KEY AUTOINCREMENT, text VARCHAR(100) NOT NULL, created DATETIME NULL)")


def notes(request):
    _create_table()
    if request.method == "POST":
        with transaction.atomic():
            n = Note.objects.create(text=request.GET.get("text", ""))
            if request.GET.get("fail"):
                raise RuntimeError("fail=1: the note must be rolled back")
        return JsonResponse({"id": n.pk, "text": n.text}, status=201)
    qs = Note.objects.order_by("id")
    if "month" in request.GET:
        qs = qs.filter(created__month=int(request.GET["month"]))
    return JsonResponse({"notes": [{"id": n.pk, "text": n.text} for n in qs]})


def sqlite(request):
    from wasmcorn.django.base import SQLITE_VERSION_INFO

    with connection.cursor() as c:
        c.execute("SELECT sqlite_version()")
        (host,) = c.fetchone()
    return JsonResponse({"host": host, "declared": ".".join(map(str, SQLITE_VERSION_INFO))})


def visits(request):
    cache.add("visits", 0, timeout=None)
    n = cache.incr("visits")
    cache.set("last", {"n": n})
    return JsonResponse({"visits": n, "last": cache.get("last")})


urlpatterns = [path("py-django-db/notes", notes), path("py-django-db/sqlite", sqlite),
               path("py-django-db/visits", visits)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

app = get_wsgi_application()
