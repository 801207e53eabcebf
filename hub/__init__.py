"""Session Hub core: rooms, connections, the event model, and the broker, presence and
store seams. No web framework and no SQL live here."""
