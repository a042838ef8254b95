"""The BMT operator: reconciles Platform, Cinema, Film and Showtime resources (Kopf)."""
