"""A small Django site (sqlite in the working directory, the test client)
whose views trip the findings rules: a QuerySet evaluated only for its
truth, a large QuerySet loaded whole, many queries in one request, and
DEBUG=True's query log growing outside any request."""
import os

import django
from django.conf import settings

settings.configure(
    DEBUG=True, SECRET_KEY="golden", ALLOWED_HOSTS=["testserver"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                           "NAME": os.path.join(os.getcwd(), "db.sqlite3")}},
    DEFAULT_AUTO_FIELD="django.db.models.AutoField", USE_TZ=True)
django.setup()
from django.contrib.auth.models import Group  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import path  # noqa: E402


def any_groups(request):
    groups = Group.objects.filter(name__startswith="g")
    if groups:  # evaluated only to test its truth
        return HttpResponse("some")
    return HttpResponse("none")


def names(request):
    n = 0
    for g in Group.objects.all():  # every row loaded at once
        n += len(g.name)
    return HttpResponse(str(n))


def many(request):
    for i in range(1200):
        Group.objects.filter(pk=1).exists()  # a query per iteration
    return HttpResponse("ok")


def group(request, pk):
    return HttpResponse(Group.objects.get(pk=pk).name)


urlpatterns = [path("groups/any/", any_groups), path("groups/", names),
               path("many/", many), path("groups/<int:pk>/", group)]

if os.path.exists("db.sqlite3"):
    os.unlink("db.sqlite3")
with connection.schema_editor() as e:
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType
    e.create_model(ContentType)
    e.create_model(Permission)
    e.create_model(Group)
Group.objects.bulk_create([Group(name="g%04d" % i) for i in range(1500)])

for i in range(2100):  # DEBUG=True outside a request: the log keeps all
    Group.objects.filter(pk=1).exists()

client = Client()
for round_ in range(3):
    for url in ("/groups/any/", "/groups/", "/many/", "/groups/1/",
                "/groups/2/", "/nowhere/"):
        client.get(url)
