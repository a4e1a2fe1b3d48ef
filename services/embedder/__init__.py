"""The embedder service: serves an ensemble bundle of open_clip members over gRPC."""
