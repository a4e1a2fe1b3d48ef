"""Offline training for vitrine: datasets, prompts, losses, samplers, train loop, ensemble bundle, evaluation."""
