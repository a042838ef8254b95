"""The product service: films, food and drinks (FAB), and their media."""
