"""vitrine services: embedder, ingest and search, plus what they share."""
