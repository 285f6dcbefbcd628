"""Functions for the OpenAI-compatible reply path: two calls before the model is asked.

A reply through `POST /v1/chat/completions` used to make seven round trips before its model
request left, each through the ORM: BEGIN, the API key (or membership), the assistant, the
workspace, the quota hold, then the new conversation and the question, and COMMIT. Now:

- `parley_enter_chat` authenticates (an API key's hash, or an account and a workspace) through
  the functions the app's other requests enter with (migration 5b1e0c9d7f42), which make that
  workspace the statement's tenant context; it marks a key used at most once per
  `p_last_used_resolution`, and reads the assistant named by id or name
  (at most two, to tell an ambiguous name), the workspace's plan and model endpoint, and the
  assistant's number of knowledge bases. A revoked or unknown key, or an unknown account, gives
  no row; a non-member gets a row with no role and nothing else.
- `parley_hold_quota` holds a reply on every quota counter it touches, in the given order, or
  on none: it answers 0 when all had room, else the number of the first that had none (the
  holds it had taken are given back). The app's `quota.reserve` calls it too.
- `parley_open_chat_reply` holds the quota and, if that worked, saves the new conversation and
  the question, in one statement.

Each runs as its own transaction (the app calls them outside any). Their commits do not wait
for the WAL to reach the disk (`synchronous_commit` off, for that transaction only): the
reply's final transaction, which saves the answer, the usage row and the settled counters,
commits durably and so makes these rows durable with it. A database crash in between loses
the unfinished reply's question and hold, and that reply fails anyway. All run as the caller
(SECURITY INVOKER): row-level security applies to them as to the app's own statements.

Revision ID: e4a9c2f7b1d3
Revises: b7e3f1a4c8d2
Create Date: 2026-12-07 11:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

from migrations.rls import APP_ROLE

revision: str = "e4a9c2f7b1d3"
down_revision: str | None = "b7e3f1a4c8d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENTER = "parley_enter_chat(text, uuid, uuid, uuid, text, interval)"
HOLD = "parley_hold_quota(uuid, uuid, jsonb, integer, bigint, timestamptz)"
OPEN = (
    "parley_open_chat_reply(uuid, uuid, jsonb, integer, bigint, timestamptz,"
    " uuid, uuid, text, text, text, uuid, text, jsonb)"
)

# Replaced by a lease or a hold of its own in migration c5e8b3d1a9f4, whose downgrade
# restores it from here.
OPEN_SQL = """
        CREATE FUNCTION parley_open_chat_reply(
            p_tenant_id uuid, p_reservation_id uuid, p_counters jsonb,
            p_replies integer, p_tokens bigint, p_expires_at timestamptz,
            p_conversation_id uuid, p_assistant_id uuid, p_channel text,
            p_external_user_id text, p_title text,
            p_question_id uuid, p_question text, p_question_meta jsonb)
        RETURNS integer
        LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
        DECLARE
            refused integer;
        BEGIN
            PERFORM set_config('app.tenant_id', p_tenant_id::text, true),
                    set_config('synchronous_commit', 'off', true);
            refused := parley_hold_quota(
                p_tenant_id, p_reservation_id, p_counters, p_replies, p_tokens, p_expires_at);
            IF refused <> 0 THEN
                RETURN refused;
            END IF;
            INSERT INTO conversations (
                id, tenant_id, assistant_id, channel, external_user_id, title, status,
                last_message_at, metadata)
            VALUES (
                p_conversation_id, p_tenant_id, p_assistant_id, p_channel::channel,
                p_external_user_id, p_title, 'open', now(), '{}');
            INSERT INTO messages (
                id, tenant_id, conversation_id, role, content, status, citations,
                prompt_tokens, completion_tokens, metadata)
            VALUES (
                p_question_id, p_tenant_id, p_conversation_id, 'user', p_question, 'complete',
                '[]', 0, 0, p_question_meta);
            RETURN 0;
        END $$
"""


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION parley_enter_chat(
            p_key_hash text, p_user_id uuid, p_tenant_id uuid,
            p_assistant_id uuid, p_assistant_name text, p_last_used_resolution interval)
        RETURNS TABLE (
            workspace_id uuid, key_id uuid, key_scopes text[], member_role text,
            account_active boolean, assistant_count integer, assistant_row jsonb,
            workspace_plan text, model_base_url text, model_api_key_encrypted text,
            assistant_knowledge_bases bigint)
        LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
        DECLARE
            found_key api_keys;
            found_assistant assistants;
        BEGIN
            PERFORM set_config('synchronous_commit', 'off', true);
            IF p_key_hash IS NOT NULL THEN
                -- As the app's other requests enter (migration 5b1e0c9d7f42).
                SELECT * INTO found_key FROM parley_enter_with_api_key(p_key_hash);
                IF NOT FOUND OR found_key.revoked_at IS NOT NULL THEN
                    RETURN;
                END IF;
                workspace_id := found_key.tenant_id;
                key_id := found_key.id;
                key_scopes := found_key.scopes;
                IF found_key.last_used_at IS NULL
                   OR found_key.last_used_at < now() - p_last_used_resolution THEN
                    UPDATE api_keys k SET last_used_at = now() WHERE k.id = found_key.id;
                END IF;
            ELSE
                SELECT e.role, e.is_active INTO member_role, account_active
                FROM parley_enter_workspace(p_user_id, p_tenant_id) e;
                IF NOT FOUND THEN
                    RETURN;
                END IF;
                workspace_id := p_tenant_id;
                IF member_role IS NULL OR NOT account_active THEN
                    RETURN NEXT;
                    RETURN;
                END IF;
            END IF;
            assistant_count := 0;
            FOR found_assistant IN
                SELECT * FROM assistants a
                WHERE a.tenant_id = workspace_id
                  AND (a.id = p_assistant_id
                       OR (p_assistant_id IS NULL AND a.name = p_assistant_name))
                LIMIT 2
            LOOP
                assistant_count := assistant_count + 1;
                IF assistant_count = 1 THEN
                    assistant_row := to_jsonb(found_assistant);
                    SELECT count(*) INTO assistant_knowledge_bases
                    FROM assistant_knowledge_bases x WHERE x.assistant_id = found_assistant.id;
                END IF;
            END LOOP;
            SELECT t.plan, s.openai_base_url, s.openai_api_key_encrypted
            INTO workspace_plan, model_base_url, model_api_key_encrypted
            FROM tenants t LEFT JOIN tenant_embedding_settings s ON s.tenant_id = t.id
            WHERE t.id = workspace_id;
            RETURN NEXT;
        END $$
        """
    )
    # p_counters: [{"scope", "period", "replies_limit", "tokens_limit", "tokens"}, ...] in the
    # order to lock them (a null limit is no limit).
    op.execute(
        """
        CREATE FUNCTION parley_hold_quota(
            p_tenant_id uuid, p_reservation_id uuid, p_counters jsonb,
            p_replies integer, p_tokens bigint, p_expires_at timestamptz)
        RETURNS integer
        LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
        DECLARE
            counter record;
        BEGIN
            FOR counter IN
                SELECT c.ordinality AS number, c.value->>'scope' AS scope,
                       (c.value->>'period')::date AS period,
                       (c.value->>'replies_limit')::bigint AS replies_limit,
                       (c.value->>'tokens_limit')::bigint AS tokens_limit,
                       (c.value->>'tokens')::bigint AS tokens
                FROM jsonb_array_elements(p_counters) WITH ORDINALITY AS c(value, ordinality)
                ORDER BY c.ordinality
            LOOP
                INSERT INTO quota_counters AS q (
                    id, tenant_id, scope, period_start,
                    replies_used, replies_reserved, tokens_used, tokens_reserved)
                SELECT gen_random_uuid(), p_tenant_id, counter.scope, counter.period,
                       0, p_replies, 0, counter.tokens
                WHERE (counter.replies_limit IS NULL OR p_replies <= counter.replies_limit)
                  AND (counter.tokens_limit IS NULL OR counter.tokens <= counter.tokens_limit)
                ON CONFLICT (tenant_id, scope, period_start) DO UPDATE
                SET replies_reserved = q.replies_reserved + EXCLUDED.replies_reserved,
                    tokens_reserved = q.tokens_reserved + EXCLUDED.tokens_reserved
                WHERE (counter.replies_limit IS NULL
                       OR q.replies_used + q.replies_reserved + EXCLUDED.replies_reserved
                          <= counter.replies_limit)
                  AND (counter.tokens_limit IS NULL
                       OR q.tokens_used + q.tokens_reserved + EXCLUDED.tokens_reserved
                          <= counter.tokens_limit);
                IF NOT FOUND THEN
                    -- Give back what this call held on the counters before this one.
                    UPDATE quota_counters q
                    SET replies_reserved = q.replies_reserved - p_replies,
                        tokens_reserved = q.tokens_reserved - (held.value->>'tokens')::bigint
                    FROM jsonb_array_elements(p_counters) WITH ORDINALITY AS held(value, ordinality)
                    WHERE held.ordinality < counter.number
                      AND q.tenant_id = p_tenant_id
                      AND q.scope = held.value->>'scope'
                      AND q.period_start = (held.value->>'period')::date;
                    RETURN counter.number;
                END IF;
            END LOOP;
            INSERT INTO quota_reservations (id, tenant_id, counters, replies, tokens, expires_at)
            SELECT p_reservation_id, p_tenant_id,
                   jsonb_agg(jsonb_build_array(c.value->>'scope', c.value->>'period')
                             ORDER BY c.ordinality),
                   p_replies, p_tokens, p_expires_at
            FROM jsonb_array_elements(p_counters) WITH ORDINALITY AS c(value, ordinality);
            RETURN 0;
        END $$
        """
    )
    op.execute(OPEN_SQL)
    for signature in (ENTER, HOLD, OPEN):
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}")


def downgrade() -> None:
    for signature in (OPEN, HOLD, ENTER):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
