"""Persistence: SQLAlchemy models, Advanced Alchemy repositories and the ChatKit Store."""
