"""unisr models: the S&R foundation model, its baselines and their training; import submodules directly (kept light)."""
