"""The course catalog: one page and one JSON listing per department (the
department is part of the route, as sites with a section per team have)."""

from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render

from school.models import Department


def department_page(request, department):
    d = get_object_or_404(Department, slug=department)
    courses = d.courses.order_by("level", "code")
    return render(request, "catalog/department.html",
                  {"department": d, "courses": courses})


def department_level(request, department, level):
    d = get_object_or_404(Department, slug=department)
    rows = d.courses.filter(level=level).values("code", "title", "credits")
    return JsonResponse({"department": d.name, "level": level,
                         "courses": list(rows)})
