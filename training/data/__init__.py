"""Datasets: Fashion Product Images, DeepFashion In-shop, a synthetic catalog; splits, prompts, image cache."""
