-- the hot query reads a user's orders by id
CREATE INDEX orders_by_user ON orders (user_id, id);
ANALYZE orders;
