#!/usr/bin/python3
"""Creates the test site's SQLite database: 40 departments, 400 courses,
20,000 students (one transaction, bulk inserts: about a second).

    builddb.py PATH
"""

import datetime
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STUDENTS = 20_000


def build(path):
    if os.path.exists(path):
        os.unlink(path)
    os.environ["SCHOOL_DB"] = path
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "schoolsite.settings")
    sys.path.insert(0, HERE)
    import django

    django.setup()
    from django.db import connection, transaction

    from school.departments import DEPARTMENTS
    from school.models import Course, Department, Student

    with connection.schema_editor() as editor:
        for model in (Department, Course, Student):
            editor.create_model(model)
    rng = random.Random(4)
    updated = datetime.datetime(2024, 5, 1, 12, tzinfo=datetime.timezone.utc)
    # Explicit ids: bulk_create on SQLite (Django 3.2) does not set them.
    with transaction.atomic():
        depts = Department.objects.bulk_create([
            Department(id=i + 1, slug=slug, name=slug.title(),
                       building="Hall %s" % "ABCDEFGH"[i % 8])
            for i, slug in enumerate(DEPARTMENTS)])
        Course.objects.bulk_create([
            Course(id=1 + 10 * (d.id - 1) + k, department=d,
                   code="%s%03d" % (d.slug[:4].upper(), k),
                   title="%s %d" % (d.name, k), credits=3 + k % 3,
                   level=1 + k % 4)
            for d in depts for k in range(10)])
        Student.objects.bulk_create([
            Student(id=i + 1, first_name="first%05d" % i,
                    last_name="last%05d" % i,
                    email="student%05d@example.edu" % i,
                    age=18 + i % 10, grade=1 + i % 12,
                    score=rng.uniform(0, 100), gpa=rng.uniform(1, 4),
                    city="city%03d" % (i % 300),
                    country="country%02d" % (i % 40),
                    enrolled=datetime.date(2018 + i % 6, 1 + i % 12,
                                           1 + i % 28),
                    updated=updated, active=bool(i % 3), credits=i % 180,
                    advisor="advisor%03d" % (i % 150),
                    notes="note %d: " % i + "lorem ipsum " * 4,
                    department=depts[i % len(depts)])
            for i in range(STUDENTS)], batch_size=2000)
    connection.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: builddb.py PATH")
    build(sys.argv[1])
