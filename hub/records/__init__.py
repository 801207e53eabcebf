"""Session records: the pure rules derived from the log and the session's record fields."""
