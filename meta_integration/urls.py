from django.urls import path

urlpatterns: list = []  # the webhook view is added by the channel issue
