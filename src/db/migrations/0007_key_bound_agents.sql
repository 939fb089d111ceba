-- Key-bound agents (issue 6/8): RFC 7523 private_key_jwt and RFC 9449 DPoP.
--
-- An agent may register a public JWK (`npm run agents -- set-key`). It then authenticates only
-- with assertions signed by the matching private key: its shared or own secret no longer works.
ALTER TABLE agents ADD COLUMN public_jwk jsonb
  CHECK (public_jwk IS NULL OR (jsonb_typeof(public_jwk) = 'object' AND NOT public_jwk ? 'd'));
-- DPoP required: every token request of the agent must carry a proof, so every token it holds
-- is bound to its key (`cnf.jkt`).
ALTER TABLE agents ADD COLUMN dpop_required boolean NOT NULL DEFAULT false;
-- The DPoP key a family's refresh tokens are bound to (RFC 9449 §5: a refresh of a bound family
-- needs a proof by the same key). NULL: not bound.
ALTER TABLE refresh_token_families ADD COLUMN jkt text
  CHECK (jkt IS NULL OR jkt ~ '^[A-Za-z0-9_-]{43}$');
