from django.urls import path

from . import api

urlpatterns = [
    path("ping/", api.ping),
    path("time/", api.server_time),
    path("echo/<path:rest>", api.echo),
    path("tokens/<uuid:token>/", api.token),
    path("events/recent/", api.recent_events),
    path("events/<int:user_id>/track/", api.track_event),
    path("stats/", api.stats),
    path("students/bulk/", api.bulk),
    path("students/<int:pk>/", api.student),
    path("departments/", api.departments),
    path("departments/<slug:slug>/courses/", api.department_courses),
    path("search/suggest/", api.suggest),
    path("compute/primes/<int:n>/", api.primes),
    path("render/table/<int:rows>/", api.table),
]
