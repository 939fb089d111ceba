-- Loss-tolerant refresh-token rotation, and rotation serialised with revocation (issue 4/8).
--
-- A family is the chain of refresh tokens one client-credentials grant started. Its row is the
-- lock every change to the family takes — a rotation, an RFC 7009 revocation, reuse
-- detection, an agent-wide revocation — so none of them can miss what another is writing:
-- before this, a revocation's UPDATE did not see the successor a concurrent rotation inserted,
-- and the successor lived on. A family is revoked as a whole, on its row.
CREATE TABLE refresh_token_families (
  id          text PRIMARY KEY,
  agent_id    text NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  environment text CHECK (environment IN ('development', 'staging', 'production')),
  -- The RFC 8707 resource the family's access tokens are for by default (NULL: the API).
  resource    text CHECK (resource IS NULL OR char_length(resource) BETWEEN 1 AND 2048),
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz,
  revoked_why text
);
CREATE INDEX refresh_token_families_agent_idx ON refresh_token_families (agent_id)
  WHERE revoked_at IS NULL;

INSERT INTO refresh_token_families (id, agent_id, environment, created_at, revoked_at, revoked_why)
SELECT family_id, min(agent_id), min(environment), min(issued_at), max(revoked_at),
       min(revoked_why) FILTER (WHERE revoked_at IS NOT NULL)
FROM refresh_tokens GROUP BY family_id;

ALTER TABLE refresh_tokens
  ADD CONSTRAINT refresh_tokens_family_fk FOREIGN KEY (family_id)
    REFERENCES refresh_token_families (id) ON DELETE CASCADE,
  -- The token this one succeeded (NULL for the first of a family).
  ADD COLUMN parent_hash text,
  -- Superseded before it was ever used: its parent was presented again within the grace period
  -- (the client lost the answer that carried it) and a fresh successor replaced it.
  ADD COLUMN retired_at timestamptz;

-- The one live token of each family: unspent, not retired.
CREATE INDEX refresh_tokens_live_idx ON refresh_tokens (family_id)
  WHERE spent_at IS NULL AND retired_at IS NULL;

-- Spends `presented` (a token hash) and issues `successor` in its family, or says why not.
-- One call decides the whole transition. Locks are taken in one order everywhere: the agent's
-- row (shared: rotations of one agent do not wait on each other, an operator's revocation or
-- deactivation does), then the family's row; every read that decides comes after them, so it
-- sees whatever the previous holder committed. The successor's parent is always `presented`.
--
--   live token      → rotated: spent, the successor is the family's live token
--   spent token     → rotated through the grace period when it was first spent at most
--                     `grace_seconds` ago, the family's live token is its child and unused, and
--                     the same client asks: that child is retired (the client lost the answer
--                     that carried it, or sent twice); otherwise `reused`: the family is revoked
--   retired token   → (a sibling handed out by a concurrent use, kept by the client) its first
--                     use while the live token is its unused sibling: rotated, the sibling
--                     retired; otherwise `reused`
--   anything else   → unknown | revoked | agent_inactive | expired | wrong_client |
--                     scope_exceeded, nothing changed
CREATE FUNCTION refresh_token_rotate(
  presented text, successor text, env text, client text, wanted text[],
  ttl_seconds integer, grace_seconds integer
) RETURNS TABLE (
  result text, family text, agent text, granted_scope text, family_resource text,
  allowed text[], not_before_ms bigint, issued_at_ms bigint, through_grace boolean
) LANGUAGE plpgsql AS $$
DECLARE
  t refresh_tokens;
  a agents;
  f refresh_token_families;
  live refresh_tokens;
  via_grace boolean := false;
  grantable boolean;
BEGIN
  SELECT * INTO t FROM refresh_tokens r WHERE r.token_hash = presented AND r.environment = env;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'unknown', NULL::text, NULL::text, NULL::text, NULL::text, NULL::text[],
                        NULL::bigint, NULL::bigint, false;
    RETURN;
  END IF;
  SELECT * INTO a FROM agents g WHERE g.id = t.agent_id FOR SHARE;
  SELECT * INTO f FROM refresh_token_families x WHERE x.id = t.family_id FOR UPDATE;
  SELECT * INTO t FROM refresh_tokens r WHERE r.token_hash = presented;

  -- An agent-wide revocation revokes every family on their rows (after waiting for the agent's
  -- row, which this holds shared): a family it missed was started after it.
  result := CASE
    WHEN f.revoked_at IS NOT NULL OR t.revoked_at IS NOT NULL THEN 'revoked'
    WHEN NOT a.active THEN 'agent_inactive'
  END;

  IF result IS NULL AND t.spent_at IS NULL AND t.retired_at IS NULL THEN
    result := CASE
      WHEN t.expires_at <= now() THEN 'expired'
      WHEN client IS NOT NULL AND t.agent_id <> client THEN 'wrong_client'
    END;
  ELSIF result IS NULL THEN
    SELECT * INTO live FROM refresh_tokens r
     WHERE r.family_id = f.id AND r.spent_at IS NULL AND r.retired_at IS NULL;
    -- (plpgsql reads an IF's condition up to its first THEN: the CASE is computed apart.)
    via_grace := client IS NOT NULL AND t.agent_id = client AND live.token_hash IS NOT NULL
      AND live.expires_at > now()
      AND CASE WHEN t.spent_at IS NULL
            THEN live.parent_hash = t.parent_hash AND t.expires_at > now()
            ELSE grace_seconds > 0 AND live.parent_hash = t.token_hash
                 AND t.spent_at + make_interval(secs => grace_seconds) >= now() END;
    IF via_grace THEN
      NULL;
    ELSE
      UPDATE refresh_token_families x SET revoked_at = now(), revoked_why = 'reuse_detected'
       WHERE x.id = f.id;
      UPDATE refresh_tokens r SET revoked_at = now(), revoked_why = 'reuse_detected'
       WHERE r.family_id = f.id AND r.revoked_at IS NULL;
      result := 'reused';
    END IF;
  END IF;

  -- What may be granted: the asked-for scopes within the original grant and what the agent
  -- may hold today; with none asked for, some of the original grant must still be allowed.
  grantable := CASE WHEN cardinality(wanted) = 0
    THEN string_to_array(t.scope, ' ') && a.allowed_scopes
    ELSE wanted <@ string_to_array(t.scope, ' ') AND wanted <@ a.allowed_scopes END;
  IF result IS NULL AND NOT grantable THEN
    result := 'scope_exceeded';
  END IF;

  IF result IS NULL THEN
    IF via_grace THEN
      UPDATE refresh_tokens r SET retired_at = now() WHERE r.token_hash = live.token_hash;
    END IF;
    -- First use (kept: the grace period runs from it).
    UPDATE refresh_tokens r SET spent_at = coalesce(r.spent_at, now())
     WHERE r.token_hash = t.token_hash;
    INSERT INTO refresh_tokens (token_hash, family_id, agent_id, scope, environment, issued_at,
                                expires_at, parent_hash)
    VALUES (successor, f.id, t.agent_id, t.scope, env, now(),
            now() + make_interval(secs => ttl_seconds), t.token_hash);
    result := 'rotated';
  END IF;

  RETURN QUERY SELECT result, f.id, t.agent_id, t.scope, f.resource, a.allowed_scopes,
    (extract(epoch FROM a.tokens_not_before) * 1000)::bigint,
    (extract(epoch FROM now()) * 1000)::bigint, via_grace;
END
$$;
