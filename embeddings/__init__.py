"""Batch text embeddings: a frozen transformer encoder, a content-keyed vector cache, and the materialize stage."""
