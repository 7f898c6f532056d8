from django.urls import path

from . import views

urlpatterns = [
    path("json", views.hello),
    path("jsonstruct", views.jsonstruct),
    path("db", views.db),
    path("cached", views.cached),
    path("queue", views.queue),
]
