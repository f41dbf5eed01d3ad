"""Evaluation reports: plots and a self-contained HTML/Markdown report. No Dagster."""
