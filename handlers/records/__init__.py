"""Session records over HTTP: record fields, content, templates, follow-ups, progress, summaries."""
