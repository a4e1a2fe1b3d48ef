"""HTTP gateway and shopper page over the Search gRPC service."""
