from django.db import models


class Student(models.Model):
    """16 columns with the id, like the incident's table."""

    first_name = models.CharField(max_length=40)
    last_name = models.CharField(max_length=40)
    email = models.CharField(max_length=80)
    age = models.IntegerField()
    grade = models.IntegerField()
    score = models.FloatField()
    gpa = models.FloatField()
    city = models.CharField(max_length=40)
    country = models.CharField(max_length=40)
    enrolled = models.DateField()
    updated = models.DateTimeField()
    active = models.BooleanField(default=True)
    credits = models.IntegerField()
    advisor = models.CharField(max_length=40)
    notes = models.TextField()

    class Meta:
        app_label = "benchsite"
