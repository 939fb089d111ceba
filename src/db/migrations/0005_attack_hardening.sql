-- Hardening after the first outside attack (docs/http.md; /work/notes/attack-1.md).

-- Access-token revocations (RFC 7009), durable. Redis answers the auth path; this table
-- answers whenever Redis cannot, so a revocation answered with a 200 holds through a Redis
-- outage. `kind` is 'token' (`id` = the token's jti) or 'family' (`id` = the refresh-token
-- family an access token names as `sid`); a row denies until `expires_at`, when every token it
-- can cover has expired. Writes purge a few expired rows as they go.
CREATE TABLE token_revocations (
  agent_id   text NOT NULL,
  kind       text NOT NULL CHECK (kind IN ('token', 'family')),
  id         text NOT NULL,
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (agent_id, kind, id)
);
CREATE INDEX token_revocations_expiry_idx ON token_revocations (expires_at);

-- The event log records each update once per (agent, idempotency key, fingerprint). A key is
-- remembered for PROGRESS_DEDUPE_TTL_MS (draft-ietf-httpapi-idempotency-key-header lets a
-- server expire keys): within that window a different update under the same key is refused
-- with 422 wherever that can be known at request time. An update answered with a 202 under a
-- key the API had forgotten, or could not know (another store held it), is recorded as its own
-- event — both 202s are honoured — instead of failing at flush time as a dead letter. Events
-- recorded before fingerprints existed (NULL) keep one event per key: NULLs are not distinct.
ALTER TABLE progress_events DROP CONSTRAINT progress_events_idempotency;
ALTER TABLE progress_events ADD CONSTRAINT progress_events_update
  UNIQUE NULLS NOT DISTINCT (agent_id, idempotency_key, fingerprint);

-- Refuses (SQLSTATE PK422, rolling the transaction back) when one of the given keys is recorded
-- for another update accepted since `since` (the start of the dedupe window).
DROP FUNCTION progress_assert_fingerprints(text[], text[], text[]);
CREATE FUNCTION progress_assert_fingerprints(
  agent_ids text[], keys text[], fingerprints text[], since timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  reused text;
BEGIN
  SELECT k.key INTO reused
    FROM unnest(agent_ids, keys, fingerprints) AS k(agent_id, key, fingerprint)
    JOIN progress_events e ON e.agent_id = k.agent_id AND e.idempotency_key = k.key
   WHERE e.fingerprint IS NOT NULL AND e.fingerprint <> k.fingerprint
     AND e.received_at >= since
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'idempotency key re-used for a different update'
      USING ERRCODE = 'PK422', DETAIL = reused;
  END IF;
END
$$;
