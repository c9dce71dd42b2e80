"""Queues, workers, JSON and metrics."""

urlpatterns: list = []
