"""Reusable layers shared by the S&R foundation model and the baselines."""
