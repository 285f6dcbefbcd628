"""A reply's last transaction in one call: the answer, its usage row and the settled quota.

`parley_finish_reply` saves the answer, appends the reply's row to the usage ledger (when one
is due), settles the quota hold to the actual use and marks the conversation's last message, in
one statement and one transaction, which commits durably as any other. Before, the same took
BEGIN, the tenant context, six statements through the ORM and COMMIT.

`parley_settle_quota` turns a hold into actual use (0 and 0 release it) and answers whether it
was still held: a hold already settled, or released by the sweep, changes nothing. The app's
`quota.settle` calls it too. Tokens count on the plan's counter only (scope 'plan', as
`backend/usage/quota.py` names it); a visitor's day counts messages.

Both run as the caller (SECURITY INVOKER): row-level security applies as to the app's own
statements. `parley_finish_reply` sets the tenant context of its transaction itself;
`parley_settle_quota` runs in its caller's.

Revision ID: f1c3a8e5d2b7
Revises: e4a9c2f7b1d3
Create Date: 2026-12-07 12:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

from migrations.rls import APP_ROLE

revision: str = "f1c3a8e5d2b7"
down_revision: str | None = "e4a9c2f7b1d3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SETTLE = "parley_settle_quota(uuid, integer, bigint)"
FINISH = (
    "parley_finish_reply(uuid, uuid, uuid, text, text, jsonb, integer, integer, text, integer,"
    " jsonb, uuid, uuid, text, bigint, uuid, integer, bigint)"
)

# Migration c5e8b3d1a9f4 makes it settle through `parley_settle_quota_share`; its downgrade
# restores this text.
SETTLE_SQL = """
        CREATE OR REPLACE FUNCTION parley_settle_quota(
            p_reservation_id uuid, p_replies integer, p_tokens bigint)
        RETURNS boolean
        LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
        DECLARE
            held record;
            counter jsonb;
            plan_scope boolean;
        BEGIN
            DELETE FROM quota_reservations r WHERE r.id = p_reservation_id
            RETURNING r.tenant_id, r.counters, r.replies, r.tokens INTO held;
            IF NOT FOUND THEN
                RETURN false;
            END IF;
            FOR counter IN SELECT c.value FROM jsonb_array_elements(held.counters) AS c(value)
            LOOP
                plan_scope := counter->>0 = 'plan';
                UPDATE quota_counters q
                SET replies_reserved = GREATEST(q.replies_reserved - held.replies, 0),
                    tokens_reserved = GREATEST(
                        q.tokens_reserved - CASE WHEN plan_scope THEN held.tokens ELSE 0 END, 0),
                    replies_used = q.replies_used + p_replies,
                    tokens_used = q.tokens_used + CASE WHEN plan_scope THEN p_tokens ELSE 0 END
                WHERE q.tenant_id = held.tenant_id
                  AND q.scope = counter->>0
                  AND q.period_start = (counter->>1)::date;
            END LOOP;
            RETURN true;
        END $$
"""


def upgrade() -> None:
    op.execute(SETTLE_SQL)
    op.execute(
        """
        CREATE FUNCTION parley_finish_reply(
            p_tenant_id uuid, p_conversation_id uuid,
            p_answer_id uuid, p_content text, p_status text, p_citations jsonb,
            p_prompt_tokens integer, p_completion_tokens integer, p_model text,
            p_latency_ms integer, p_meta jsonb,
            p_usage_id uuid, p_assistant_id uuid, p_usage_outcome text, p_cost_micros bigint,
            p_reservation_id uuid, p_used_replies integer, p_used_tokens bigint)
        RETURNS timestamptz
        LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
        DECLARE
            saved_at timestamptz;
        BEGIN
            PERFORM set_config('app.tenant_id', p_tenant_id::text, true);
            INSERT INTO messages (
                id, tenant_id, conversation_id, role, content, status, citations,
                prompt_tokens, completion_tokens, model, latency_ms, metadata)
            VALUES (
                p_answer_id, p_tenant_id, p_conversation_id, 'assistant', p_content,
                p_status::message_status, p_citations, p_prompt_tokens, p_completion_tokens,
                p_model, p_latency_ms, p_meta)
            RETURNING created_at INTO saved_at;
            -- A reply that asked no model, or failed before any text, has no usage row.
            IF p_usage_id IS NOT NULL THEN
                INSERT INTO usage_records (
                    id, tenant_id, kind, outcome, assistant_id, conversation_id, message_id,
                    model, prompt_tokens, completion_tokens, embedding_tokens, cost_micros)
                VALUES (
                    p_usage_id, p_tenant_id, 'reply', p_usage_outcome::usage_outcome,
                    p_assistant_id, p_conversation_id, p_answer_id, p_model, p_prompt_tokens,
                    p_completion_tokens, 0, p_cost_micros);
            END IF;
            PERFORM parley_settle_quota(p_reservation_id, p_used_replies, p_used_tokens);
            UPDATE conversations c SET last_message_at = now() WHERE c.id = p_conversation_id;
            RETURN saved_at;
        END $$
        """
    )
    for signature in (SETTLE, FINISH):
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}")


def downgrade() -> None:
    for signature in (FINISH, SETTLE):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
