-- Progress you can trust (issue 1/8).

-- `data` stored exactly as the API serialised it: `json` keeps the text verbatim, where
-- `jsonb` re-orders keys, drops duplicates and rewrites numbers.
ALTER TABLE progress_events ALTER COLUMN data TYPE json USING data::json;
ALTER TABLE progress_state ALTER COLUMN data TYPE json USING data::json;

-- The update an idempotency key was first accepted for, as a hash of its canonical content
-- (draft-ietf-httpapi-idempotency-key-header "fingerprint"): the same key with another
-- fingerprint is a re-use, refused with 422. NULL for events recorded before this migration.
ALTER TABLE progress_events ADD COLUMN fingerprint text;

-- Every batch is recorded here once all its updates are committed, whichever store took it:
-- Postgres is the one truth of a batch's committed_at. `via` says how it was committed;
-- a direct batch (committed straight to Postgres while Redis could not take it) is `synced`
-- once its idempotency keys are in Redis' dedupe too. `discarded` counts its updates an
-- operator discarded from the dead letters (they are not in the event log).
ALTER TABLE progress_batches
  ADD COLUMN via text NOT NULL DEFAULT 'direct' CHECK (via IN ('direct', 'buffer')),
  ADD COLUMN synced_at timestamptz,
  ADD COLUMN discarded integer NOT NULL DEFAULT 0 CHECK (discarded >= 0);
CREATE INDEX progress_batches_unsynced_idx ON progress_batches (committed_at)
  WHERE via = 'direct' AND synced_at IS NULL;

-- Refuses (SQLSTATE PK422, rolling the transaction back) when one of the given keys is already
-- recorded for another update. Run after the insert that skipped the known keys, so a row a
-- concurrent transaction committed meanwhile is seen too.
CREATE FUNCTION progress_assert_fingerprints(agent_ids text[], keys text[], fingerprints text[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  reused text;
BEGIN
  SELECT k.key INTO reused
    FROM unnest(agent_ids, keys, fingerprints) AS k(agent_id, key, fingerprint)
    JOIN progress_events e ON e.agent_id = k.agent_id AND e.idempotency_key = k.key
   WHERE e.fingerprint IS NOT NULL AND e.fingerprint <> k.fingerprint
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'idempotency key re-used for a different update'
      USING ERRCODE = 'PK422', DETAIL = reused;
  END IF;
END
$$;
