-- A withdrawn showtime takes no more bookings; its orders and tickets stay as they are.
ALTER TABLE showtimes ADD COLUMN cancelled_at timestamptz;
