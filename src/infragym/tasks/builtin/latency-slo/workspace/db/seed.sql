-- :users users, 500 items and :orders orders spread over the users (deterministic).
INSERT INTO users SELECT u, 'user-' || u FROM generate_series(1, :users) u;
INSERT INTO items SELECT i, 'item-' || md5(i::text), 100 + (i * 37) % 9900
    FROM generate_series(1, 500) i;
INSERT INTO orders (user_id, item_id, qty)
    SELECT 1 + (o::bigint * 7919) % :users, 1 + (o::bigint * 104729) % 500, 1 + o % 5
    FROM generate_series(1, :orders) o;
ANALYZE;
