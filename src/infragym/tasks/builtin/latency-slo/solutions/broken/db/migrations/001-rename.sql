-- a column the application reads renamed: every read of orders answers 500
ALTER TABLE orders RENAME COLUMN qty TO quantity;
