-- Agents that may ask for tokens. A NULL secret_hash means the agent authenticates with the
-- environment's shared agent secret; otherwise its own secret replaces that one.
CREATE TABLE agents (
  id             text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._:-]{1,128}$'),
  display_name   text,
  active         boolean NOT NULL DEFAULT true,
  allowed_scopes text[] NOT NULL DEFAULT '{}',
  secret_hash    text CHECK (secret_hash IS NULL OR secret_hash ~ '^sha256\$[A-Za-z0-9_-]{43}$'),
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id           text PRIMARY KEY CHECK (char_length(id) BETWEEN 1 AND 128),
  display_name text NOT NULL,
  timezone     text NOT NULL DEFAULT 'UTC',
  locale       text NOT NULL DEFAULT 'en-US',
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- Authorization is data: an agent sees a user only through a row here.
CREATE TABLE agent_user_grants (
  agent_id   text NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (agent_id, user_id)
);
CREATE INDEX agent_user_grants_user_idx ON agent_user_grants (user_id);

CREATE TABLE user_context (
  user_id    text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  context    jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(context) = 'object'),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Current state per (user, task): the update with the latest occurred_at wins, whatever the
-- order updates arrive in.
CREATE TABLE progress_state (
  user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  task_id     text NOT NULL CHECK (char_length(task_id) BETWEEN 1 AND 128),
  status      text NOT NULL
              CHECK (status IN ('not_started', 'in_progress', 'completed', 'failed', 'skipped')),
  progress    smallint NOT NULL CHECK (progress BETWEEN 0 AND 100),
  data        jsonb,
  occurred_at timestamptz NOT NULL,
  agent_id    text NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, task_id)
);

-- Every accepted update, once per (agent, idempotency key).
CREATE TABLE progress_events (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  agent_id        text NOT NULL,
  idempotency_key text NOT NULL CHECK (char_length(idempotency_key) BETWEEN 1 AND 128),
  batch_id        text NOT NULL,
  user_id         text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  task_id         text NOT NULL,
  status          text NOT NULL,
  progress        smallint NOT NULL,
  data            jsonb,
  occurred_at     timestamptz NOT NULL,
  received_at     timestamptz NOT NULL,
  recorded_at     timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT progress_events_idempotency UNIQUE (agent_id, idempotency_key)
);
CREATE INDEX progress_events_user_task_idx ON progress_events (user_id, task_id, occurred_at DESC);
CREATE INDEX progress_events_batch_idx ON progress_events (batch_id);

-- Refresh tokens are opaque; only their SHA-256 is stored. Each use spends the token and
-- issues a successor in the same family; presenting a spent one revokes the family.
CREATE TABLE refresh_tokens (
  token_hash   text PRIMARY KEY,
  family_id    text NOT NULL,
  agent_id     text NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  scope        text NOT NULL,
  issued_at    timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  spent_at     timestamptz,
  revoked_at   timestamptz,
  revoked_why  text
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expiry_idx ON refresh_tokens (expires_at);
