"""The school's tables: 40 departments, 400 courses and 20,000 students
(16 columns each, the shape of the incident's table)."""

from django.db import models


class Department(models.Model):
    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=80)
    building = models.CharField(max_length=40)

    class Meta:
        app_label = "school"


class Course(models.Model):
    department = models.ForeignKey(Department, on_delete=models.CASCADE,
                                   related_name="courses")
    code = models.CharField(max_length=16, unique=True)
    title = models.CharField(max_length=120)
    credits = models.IntegerField()
    level = models.IntegerField()

    class Meta:
        app_label = "school"


class Student(models.Model):
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
    department = models.ForeignKey(Department, on_delete=models.CASCADE,
                                   related_name="students")

    class Meta:
        app_label = "school"
        ordering = ["id"]
