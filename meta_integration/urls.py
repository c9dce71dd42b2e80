from django.urls import path

from meta_integration import views

urlpatterns = [
    path("webhooks/whatsapp/", views.whatsapp_webhook, name="whatsapp-webhook"),
]
