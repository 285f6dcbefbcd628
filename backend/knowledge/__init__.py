"""Knowledge bases: sources, ingestion, embeddings and retrieval."""
