from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("about/", views.AboutView.as_view(), name="about"),
    path("students/", views.StudentListView.as_view(), name="students"),
    path("students/search/", views.search, name="search"),
    path("students/<int:pk>/", views.StudentDetailView.as_view(),
         name="student"),
    path("students/<int:pk>/card/", views.student_card, name="card"),
    path("students/<int:pk>/transcript/", views.transcript,
         name="transcript"),
    path("grades/<int:grade>/", views.grade, name="grade"),
    path("cities/<slug:city>/", views.city, name="city"),
    path("countries/<str:country>/summary/", views.country_summary,
         name="country"),
    path("advisors/<str:advisor>/", views.advisor, name="advisor"),
    path("courses/<str:code>/", views.course, name="course"),
    path("reports/<int:year>/honor-roll/", views.honor_roll,
         name="honor-roll"),
    path("reports/<int:year>/summary/", views.year_summary, name="summary"),
    path("reports/<int:year>/by-country/", views.by_country,
         name="by-country"),
    path("reports/<int:year>/<int:month>/enrolments/", views.enrolments,
         name="enrolments"),
    path("calendar/<int:year>/<int:month>/", views.month_calendar,
         name="calendar"),
]
