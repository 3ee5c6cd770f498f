"""The JSON API. Mostly small transient work; `track_event` keeps a
record of every event it is sent in a module-level history (for
`recent_events`), and nothing ever trims it: each request leaves a few tens
of KB behind."""

import hashlib
import json
import time
import uuid

from django.db.models import Avg, Count
from django.http import JsonResponse
from django.shortcuts import get_object_or_404

from .models import Course, Department, Student

_HISTORY = []  # every event tracked since the process started


def _context_of(request, user_id):
    """What the analytics team asked to keep with each event: the request's
    headers and query, and the page's breadcrumbs as displayed."""
    headers = {k: v for k, v in request.META.items()
               if k.startswith("HTTP_")}
    crumbs = []
    for depth in range(60):
        label = "%s > step %d > user %d" % (request.path, depth, user_id)
        crumbs.append(label.ljust(1000, "."))
    return {"headers": headers, "query": dict(request.GET.items()),
            "crumbs": crumbs}


def track_event(request, user_id):
    event = {"user": user_id, "kind": request.GET.get("kind", "view"),
             "at": time.time(), "context": _context_of(request, user_id)}
    _HISTORY.append(event)  # MARK:history
    return JsonResponse({"ok": True, "tracked": len(_HISTORY)})


def recent_events(request):
    last = _HISTORY[-10:]
    return JsonResponse({"events": [{"user": e["user"], "kind": e["kind"],
                                     "at": e["at"]} for e in last]})


def ping(request):
    return JsonResponse({"pong": True})


def server_time(request):
    return JsonResponse({"epoch": time.time(),
                         "local": time.strftime("%Y-%m-%d %H:%M:%S")})


def echo(request, rest):
    parts = rest.split("/")
    return JsonResponse({"path": rest, "parts": parts,
                         "reversed": [p[::-1] for p in parts]})


def token(request, token):
    digest = hashlib.sha256(token.bytes * 64).hexdigest()
    return JsonResponse({"token": str(token), "version": token.version,
                         "digest": digest, "fresh": str(uuid.uuid4())})


def stats(request):
    agg = Student.objects.aggregate(n=Count("id"), gpa=Avg("gpa"))
    return JsonResponse({"students": agg["n"], "gpa": agg["gpa"],
                         "departments": Department.objects.count(),
                         "courses": Course.objects.count()})


def student(request, pk):
    s = get_object_or_404(Student, pk=pk)
    return JsonResponse({"id": s.id, "first": s.first_name,
                         "last": s.last_name, "notes": s.notes})


def bulk(request):
    ids = [int(x) for x in request.GET.get("ids", "1").split(",")[:50]]
    found = Student.objects.in_bulk(ids)
    return JsonResponse({str(k): v.email for k, v in found.items()})


def departments(request):
    return JsonResponse({"departments": list(
        Department.objects.values("slug", "name", "building"))})


def department_courses(request, slug):
    d = get_object_or_404(Department, slug=slug)
    return JsonResponse({"department": d.name, "courses": list(
        d.courses.values("code", "title", "credits"))})


def suggest(request):
    prefix = request.GET.get("q", "a")
    names = (Student.objects.filter(first_name__startswith=prefix)
             .values_list("first_name", flat=True).distinct()[:10])
    return JsonResponse({"q": prefix, "suggestions": list(names)})


def primes(request, n):
    n = min(n, 20000)
    sieve = bytearray([1]) * (n + 1)
    sieve[0:2] = b"\0\0"
    for i in range(2, int(n ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i::i] = bytearray(len(range(i * i, n + 1, i)))
    found = [i for i, v in enumerate(sieve) if v]
    return JsonResponse({"n": n, "count": len(found), "last": found[-5:]})


def table(request, rows):
    rows = min(rows, 2000)
    data = [{"row": i, "label": "item %d" % i, "square": i * i}
            for i in range(rows)]
    body = json.dumps(data)
    return JsonResponse({"rows": rows, "bytes": len(body),
                         "sha1": hashlib.sha1(body.encode()).hexdigest()})
