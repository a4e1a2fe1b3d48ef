"""The vector storage port and its adapters (Qdrant Edge embedded, qdrant-client by URL)."""
