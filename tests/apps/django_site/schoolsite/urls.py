from django.urls import include, path

from school import views

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.HealthView.as_view(), name="health"),
    path("school/", include("school.urls")),
    path("api/v1/", include("school.api_urls")),
    path("catalog/", include("catalog.urls")),
]
