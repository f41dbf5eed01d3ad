"""unisr data package: the data contract, synthetic generator, real-data adapters, validation. No Dagster."""
