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
