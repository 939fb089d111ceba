-- Agent lifecycle and tokens that hold (issue 2/8).
--
-- Agents' own secrets are stored as salted PBKDF2-SHA256 hashes; the seed's unsalted SHA-256
-- form still verifies and is replaced on the agent's next successful token request.
ALTER TABLE agents DROP CONSTRAINT IF EXISTS agents_secret_hash_check;
ALTER TABLE agents ADD CONSTRAINT agents_secret_hash_check CHECK (
  secret_hash IS NULL
  OR secret_hash ~ '^sha256\$[A-Za-z0-9_-]{43}$'
  OR secret_hash ~ '^pbkdf2-sha256\$[0-9]{1,7}\$[A-Za-z0-9_-]{16,64}\$[A-Za-z0-9_-]{43}$'
);

-- Agent-wide revocation: access tokens issued before this instant are refused (within
-- GRANT_CACHE_TTL_MS, the time an isolate trusts what it looked up about an agent).
ALTER TABLE agents ADD COLUMN tokens_not_before timestamptz;

-- Refresh tokens belong to the environment that issued them: environments may share a
-- database, and a staging refresh token must never yield a production access token. Tokens
-- issued before this migration have none and are refused (the client authenticates again).
ALTER TABLE refresh_tokens ADD COLUMN environment text
  CHECK (environment IN ('development', 'staging', 'production'));
