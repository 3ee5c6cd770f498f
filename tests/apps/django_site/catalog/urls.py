"""Two routes per department: 80 endpoints, each its own route pattern."""

from django.urls import path

from school.departments import DEPARTMENTS

from . import views

urlpatterns = []
for _slug in DEPARTMENTS:
    urlpatterns += [
        path("%s/" % _slug, views.department_page,
             {"department": _slug}, name="%s-page" % _slug),
        path("%s/courses/<int:level>/" % _slug, views.department_level,
             {"department": _slug}, name="%s-level" % _slug),
    ]
