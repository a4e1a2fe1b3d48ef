"""The search service: embeds queries, queries every member, fuses and re-ranks the hits."""
