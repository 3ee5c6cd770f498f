"""The site's routes with concrete URLs for a load generator: plain Python,
no Django import (the test reads it in its own process).

routes() -> [(pattern, role, [url, ...])]: one entry per route pattern of
schoolsite/urls.py, with its full route as Django's resolver joins it
(include prefixes and all); role is "leak" for the view that keeps a
record of every request, "truthiness" for the incident's report view, and
"ordinary" for the rest.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from school.departments import DEPARTMENTS  # noqa: E402

LEAK = "api/v1/events/<int:user_id>/track/"
TRUTHINESS = "school/reports/<int:year>/honor-roll/"


def routes():
    out = [
        ("", "ordinary", ["/"]),
        ("health/", "ordinary", ["/health/"]),
        ("school/", "ordinary", ["/school/"]),
        ("school/about/", "ordinary", ["/school/about/"]),
        ("school/students/", "ordinary",
         ["/school/students/?page=%d" % p for p in (1, 7, 40, 300)]),
        ("school/students/search/", "ordinary",
         ["/school/students/search/?q=last%03d" % k for k in (1, 42, 199)]),
        ("school/students/<int:pk>/", "ordinary",
         ["/school/students/%d/" % pk for pk in (1, 777, 12345, 19999)]),
        ("school/students/<int:pk>/card/", "ordinary",
         ["/school/students/%d/card/" % pk for pk in (2, 5000, 15000)]),
        ("school/students/<int:pk>/transcript/", "ordinary",
         ["/school/students/%d/transcript/" % pk for pk in (3, 3003, 9999)]),
        ("school/grades/<int:grade>/", "ordinary",
         ["/school/grades/%d/" % g for g in (1, 6, 12)]),
        ("school/cities/<slug:city>/", "ordinary",
         ["/school/cities/city%03d/" % c for c in (0, 150, 299)]),
        ("school/countries/<str:country>/summary/", "ordinary",
         ["/school/countries/country%02d/summary/" % c for c in (1, 39)]),
        ("school/advisors/<str:advisor>/", "ordinary",
         ["/school/advisors/advisor%03d/" % a for a in (7, 70, 140)]),
        ("school/courses/<str:code>/", "ordinary",
         ["/school/courses/%s/" % c for c in ("PHYS003", "MUSI007",
                                               "ZOOL001")]),
        (TRUTHINESS, "truthiness",
         ["/school/reports/%d/honor-roll/" % y for y in (2023, 2024, 2025)]),
        ("school/reports/<int:year>/summary/", "ordinary",
         ["/school/reports/%d/summary/" % y for y in (2019, 2022)]),
        ("school/reports/<int:year>/by-country/", "ordinary",
         ["/school/reports/%d/by-country/" % y for y in (2018, 2021)]),
        ("school/reports/<int:year>/<int:month>/enrolments/", "ordinary",
         ["/school/reports/2020/%d/enrolments/" % m for m in (1, 6, 12)]),
        ("school/calendar/<int:year>/<int:month>/", "ordinary",
         ["/school/calendar/%d/%d/" % ym for ym in ((2024, 2), (2031, 11))]),
        ("api/v1/ping/", "ordinary", ["/api/v1/ping/"]),
        ("api/v1/time/", "ordinary", ["/api/v1/time/"]),
        ("api/v1/echo/<path:rest>", "ordinary",
         ["/api/v1/echo/a/b/c", "/api/v1/echo/deep/er/path/here"]),
        ("api/v1/tokens/<uuid:token>/", "ordinary",
         ["/api/v1/tokens/%s/" % t for t in (
             "12345678-1234-5678-1234-567812345678",
             "9f1c2d3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f")]),
        ("api/v1/events/recent/", "ordinary", ["/api/v1/events/recent/"]),
        (LEAK, "leak",
         ["/api/v1/events/%d/track/?kind=%s" % (u, k)
          for u, k in ((17, "view"), (4242, "click"), (99, "scroll"),
                       (31337, "view"), (5, "purchase"))]),
        ("api/v1/stats/", "ordinary", ["/api/v1/stats/"]),
        ("api/v1/students/bulk/", "ordinary",
         ["/api/v1/students/bulk/?ids=1,2,3,400,5000",
          "/api/v1/students/bulk/?ids=19000,19001"]),
        ("api/v1/students/<int:pk>/", "ordinary",
         ["/api/v1/students/%d/" % pk for pk in (8, 888, 8888)]),
        ("api/v1/departments/", "ordinary", ["/api/v1/departments/"]),
        ("api/v1/departments/<slug:slug>/courses/", "ordinary",
         ["/api/v1/departments/%s/courses/" % d for d in DEPARTMENTS[::9]]),
        ("api/v1/search/suggest/", "ordinary",
         ["/api/v1/search/suggest/?q=first1%d" % k for k in (0, 23)]),
        ("api/v1/compute/primes/<int:n>/", "ordinary",
         ["/api/v1/compute/primes/%d/" % n for n in (500, 5000)]),
        ("api/v1/render/table/<int:rows>/", "ordinary",
         ["/api/v1/render/table/%d/" % n for n in (10, 300)]),
    ]
    for d in DEPARTMENTS:
        out.append(("catalog/%s/" % d, "ordinary", ["/catalog/%s/" % d]))
        out.append(("catalog/%s/courses/<int:level>/" % d, "ordinary",
                    ["/catalog/%s/courses/%d/" % (d, lv) for lv in (1, 3)]))
    return out


if __name__ == "__main__":
    for pattern, role, urls in routes():
        print("%-12s %-50s %s" % (role, pattern, " ".join(urls)))
