from django.http import JsonResponse

from .models import Student


def ping(request):
    """The small endpoint: a few objects per request."""
    name = request.GET.get("name", "world")
    return JsonResponse({"hello": name, "items": [1, 2, 3],
                         "path": request.path})


def students_over_20(request):
    """The incident's aggregate view: `if students:` evaluates the whole
    QuerySet (20,000 rows built into model instances) where .exists()
    would have done."""
    students = Student.objects.filter(age__gt=20)
    limit = request.GET.get("limit")
    if limit:  # smaller variants, for runs under callgrind
        students = students[:int(limit)]
    if students:
        n = len(students)
        avg = sum(s.score for s in students) / n
    else:
        n, avg = 0, 0.0
    return JsonResponse({"count": n, "avg_score": round(avg, 3)})
