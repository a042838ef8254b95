"""The small shared library of the BMT services: settings, database, events, web plumbing."""
