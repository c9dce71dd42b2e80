"""Console URLs under /ops/: health figures (urls_health) and the operator pages (urls_pages)."""

from whatsappcrm_backend.console import urls_health, urls_pages

app_name = "console"
urlpatterns = [*urls_health.urlpatterns, *urls_pages.urlpatterns]
