"""Helpers shared by all services: config, logging, server bootstrap, bundle schema."""
