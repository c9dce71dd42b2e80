from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path

from whatsappcrm_backend import views
from whatsappcrm_backend.console import health_views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    # Prometheus scrapes the root path; gated like /ops/queues.json (staff or X-Ops-Token).
    path("metrics", health_views.metrics_view, name="metrics"),
    path("ops/", include("whatsappcrm_backend.console.urls")),
    path("admin/", admin.site.urls),
    path("", include("meta_integration.urls")),
]
# Serves the admin's static files when DEBUG is on (any server, gunicorn included).
urlpatterns += staticfiles_urlpatterns()
