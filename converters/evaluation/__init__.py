"""Evaluation: routing policies on quality/cost tables, reports and plots, and bundles scored
exactly as the service serves them."""
