"""The showtime service: cinemas, halls, seat layouts and showtimes."""
