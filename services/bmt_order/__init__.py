"""The order service: seat inventory, holds, orders and tickets."""
