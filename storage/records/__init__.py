"""Session records in PostgreSQL: the projection, content, catalog and record fields."""
