-- Films managed as Kubernetes resources are found by their external key (namespace/name);
-- a deleted one is hidden, not erased: orders and tickets may still point at it.
ALTER TABLE films ADD COLUMN external_key text UNIQUE;
ALTER TABLE films ADD COLUMN deleted_at timestamptz;
-- Where each medium was imported from, so re-applying an unchanged resource imports nothing.
ALTER TABLE films ADD COLUMN poster_source text;
ALTER TABLE films ADD COLUMN trailer_source text;
