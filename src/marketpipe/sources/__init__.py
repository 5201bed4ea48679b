"""Sources: exchanges, replay and synthetic markets, each yielding records."""
