"""Scoring translations and summaries."""
