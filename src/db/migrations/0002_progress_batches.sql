-- Batches committed straight to Postgres (no Redis buffer). Buffered batches keep their
-- status in Redis until they are flushed; see src/progress/.
CREATE TABLE progress_batches (
  id           text PRIMARY KEY,
  agent_id     text NOT NULL,
  accepted     integer NOT NULL CHECK (accepted >= 0),
  duplicates   integer NOT NULL CHECK (duplicates >= 0),
  created_at   timestamptz NOT NULL DEFAULT now(),
  committed_at timestamptz
);
CREATE INDEX progress_batches_agent_idx ON progress_batches (agent_id, created_at DESC);
