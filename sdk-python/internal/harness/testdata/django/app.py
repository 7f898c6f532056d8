"""A minimal Django project in one module (no database), served through the
WSGI bridge by TestDjangoWSGI."""


from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="wasmcorn-test-only",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    INSTALLED_APPS=[],
    DATABASES={},
    USE_TZ=True,
)

import django  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402

django.setup()


def hello(request, name):
    return JsonResponse({"hello": name, "q": request.GET.get("q")})


urlpatterns = [path("py-django/hello/<str:name>", hello)]

from django.core.wsgi import get_wsgi_application  # noqa: E402

app = get_wsgi_application()
