"""Ingestion tasks: leagues, fixtures, odds, scores (API-Football)."""
