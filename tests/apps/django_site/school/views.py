"""The school's pages. Ordinary views doing transient work (queries of a
few dozen rows, templates, some computation), and the reports, one of which
is the incident: `honor_roll` tests a 20,000-row QuerySet's truthiness,
which fetches and builds every row on every request, and then never uses
them (`.exists()` would have cost one row)."""

import calendar
import datetime

from django.db.models import Avg, Count, Max, Min
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views import View
from django.views.generic import DetailView, ListView, TemplateView

from .departments import DEPARTMENTS
from .models import Course, Department, Student


def _student_dict(s):
    return {"id": s.id, "name": "%s %s" % (s.first_name, s.last_name),
            "email": s.email, "grade": s.grade, "gpa": round(s.gpa, 2),
            "city": s.city, "country": s.country}


def home(request):
    return render(request, "school/home.html",
                  {"departments": DEPARTMENTS[:12]})


class HealthView(View):
    def get(self, request):
        return JsonResponse({"status": "ok",
                             "time": datetime.datetime.utcnow().isoformat()})


def index(request):
    departments = list(Department.objects.order_by("name"))
    return render(request, "school/index.html", {"departments": departments})


class AboutView(TemplateView):
    template_name = "school/about.html"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["facts"] = ["Founded in %d" % (1850 + i) for i in range(8)]
        return ctx


class StudentListView(ListView):
    model = Student
    paginate_by = 25
    template_name = "school/student_list.html"


class StudentDetailView(DetailView):
    model = Student
    template_name = "school/student_detail.html"


def student_card(request, pk):
    return JsonResponse(_student_dict(get_object_or_404(Student, pk=pk)))


def transcript(request, pk):
    student = get_object_or_404(Student, pk=pk)
    courses = Course.objects.filter(
        department_id=student.department_id).order_by("code")[:12]
    lines = [{"code": c.code, "title": c.title, "credits": c.credits,
              "mark": "ABCDE"[(student.id + c.id) % 5]} for c in courses]
    return render(request, "school/transcript.html",
                  {"student": student, "lines": lines})


def search(request):
    q = request.GET.get("q", "")
    found = Student.objects.filter(last_name__startswith=q)[:20]
    return JsonResponse({"q": q,
                         "results": [_student_dict(s) for s in found]})


def grade(request, grade):
    students = Student.objects.filter(grade=grade).order_by("-gpa")[:50]
    return render(request, "school/grade.html",
                  {"grade": grade, "students": students})


def city(request, city):
    students = Student.objects.filter(city=city)[:30]
    return JsonResponse({"city": city,
                         "students": [_student_dict(s) for s in students]})


def country_summary(request, country):
    agg = Student.objects.filter(country=country).aggregate(
        n=Count("id"), gpa=Avg("gpa"), oldest=Max("age"), youngest=Min("age"))
    return JsonResponse({"country": country, **agg})


def advisor(request, advisor):
    names = list(Student.objects.filter(advisor=advisor)
                 .values_list("last_name", flat=True)[:40])
    return JsonResponse({"advisor": advisor, "advisees": names})


def course(request, code):
    c = get_object_or_404(Course.objects.select_related("department"),
                          code=code)
    return render(request, "school/course.html", {"course": c})


def honor_roll(request, year):
    """The honor roll of the students enrolled by `year`."""
    students = Student.objects.filter(enrolled__year__lte=year)
    if students:  # MARK:truthiness
        honor = (Student.objects.filter(enrolled__year__lte=year,
                                        gpa__gte=3.9).order_by("-gpa")[:20])
        title = "Honor roll %d" % year
    else:
        honor, title = [], "No students enrolled by %d" % year
    return render(request, "school/honor_roll.html",
                  {"title": title, "students": honor, "year": year})


def year_summary(request, year):
    qs = Student.objects.filter(enrolled__year=year)
    return JsonResponse({"year": year, "enrolled": qs.count(),
                         "active": qs.filter(active=True).count()})


def by_country(request, year):
    rows = (Student.objects.filter(enrolled__year=year)
            .values("country").annotate(n=Count("id"))
            .order_by("-n")[:10])
    return JsonResponse({"year": year, "countries": list(rows)})


def enrolments(request, year, month):
    if not 1 <= month <= 12:
        raise Http404("no such month")
    days = (Student.objects.filter(enrolled__year=year, enrolled__month=month)
            .values("enrolled").annotate(n=Count("id")).order_by("enrolled"))
    return JsonResponse({"year": year, "month": month,
                         "days": [{"day": d["enrolled"].isoformat(),
                                   "n": d["n"]} for d in days]})


def month_calendar(request, year, month):
    if not 1 <= month <= 12:
        raise Http404("no such month")
    weeks = calendar.Calendar().monthdayscalendar(year, month)
    return render(request, "school/calendar.html",
                  {"year": year, "month": calendar.month_name[month],
                   "weeks": weeks})
