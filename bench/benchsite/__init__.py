"""A minimal Django project for memhound's benchmark (bench/run.py).

One app, one 16-column model (the shape of the incident in the field
notes: a Student table of 20,000 rows), two views: a small JSON endpoint and
an "aggregate" endpoint that evaluates a 20k-row QuerySet by testing its
truthiness, as the incident's view did.
"""
