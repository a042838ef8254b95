-- pgbench: the order service's hold transaction, with 1 to 4 random seats.
\set a random(:lo, :hi)
\set b random(:lo, :hi)
\set c random(:lo, :hi)
\set d random(:lo, :hi)
\set n random(1, 4)
BEGIN;
INSERT INTO orders (user_id, email, showtime_id, expires_at) VALUES (0, 'pgbench@bench', :st, now() + interval '10 minutes') RETURNING id AS oid \gset
WITH wanted AS (SELECT seat_id FROM seats WHERE showtime_id = :st AND seat_id = any((ARRAY[:a, :b, :c, :d]::bigint[])[1:(:n)]) ORDER BY seat_id FOR UPDATE) UPDATE seats s SET status = 'held', order_id = :oid, held_until = now() + interval '10 minutes' FROM wanted w WHERE s.showtime_id = :st AND s.seat_id = w.seat_id AND (s.status = 'available' OR (s.status = 'held' AND s.held_until <= now()));
INSERT INTO order_seats (order_id, seat_id, label, seat_type, price) SELECT :oid, seat_id, '', 'standard', price FROM seats WHERE order_id = :oid;
COMMIT;
