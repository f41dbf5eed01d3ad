"""unisr's Dagster code location: thin assets over the data, features, embeddings and models libraries."""
