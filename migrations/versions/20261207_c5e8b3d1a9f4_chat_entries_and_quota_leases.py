"""What lets an OpenAI-compatible reply reach its model without a database round trip.

- Each API process keeps what `parley_enter_chat` answered for an API key and an assistant
  (backend/assistants/chat_entries.py). The triggers here tell it when that may have changed:
  every change to a key's scopes or revocation, to an assistant, to an assistant's knowledge
  bases, to a workspace or its model endpoint notifies the channel `parley_entries` with the
  workspace's id, once the change commits. A notification drops that workspace's entries.
- `parley_lease_quota` holds up to `p_want` replies on the plan's counter for one process at
  once (a lease, backend/usage/leases.py): a quota reservation like a reply's own, holding
  `p_tokens_each` tokens per reply. It grants as many as have room but never more than a
  quarter of the room left (at least one), so other processes near the edge still get some;
  0 when not even one reply fits. It first gives back `p_returned_replies` and
  `p_returned_tokens` of a previous lease, `p_returned`, so a process that replaces a lease
  does not refuse itself with what the old one still held.
- `parley_settle_quota_share` settles part of a reservation: one reply of a lease (what it
  held, what it used), or a lease's unused rest (used 0). The reservation's row goes once
  nothing (no reply, no token) is held on it any more. A reservation the stale-hold sweep
  already released changes nothing. `parley_settle_quota`, which settles a whole
  reservation, now settles it as a share of everything it holds.
- `parley_finish_chat_reply` is `parley_finish_reply` for a reply whose conversation and
  question were not saved before the model was asked: it saves them first, settles the
  reply's share of its reservation and marks the API key used (at most once per
  `p_last_used_resolution`).
- `parley_open_chat_reply` goes: a reply's conversation and question are now saved with its
  answer, and its quota is held by a lease or, with a cap per visitor, by `parley_hold_quota`.

Revision ID: c5e8b3d1a9f4
Revises: f1c3a8e5d2b7
Create Date: 2026-12-07 14:10:00.000000
"""

import importlib
from collections.abc import Sequence
from typing import Any

from alembic import op

from migrations.rls import APP_ROLE

revision: str = "c5e8b3d1a9f4"
down_revision: str | None = "f1c3a8e5d2b7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEASE = (
    "parley_lease_quota(uuid, uuid, text, date, bigint, bigint, integer, bigint, timestamptz,"
    " uuid, integer, bigint)"
)
SHARE = "parley_settle_quota_share(uuid, integer, bigint, integer, bigint)"
FINISH = (
    "parley_finish_chat_reply(uuid, uuid, uuid, text, text, text, uuid, text, jsonb,"
    " uuid, text, text, jsonb, integer, integer, text, integer, jsonb,"
    " uuid, text, bigint, uuid, integer, bigint, integer, bigint, uuid, interval)"
)
# (table, the column that names the workspace, the events that may change an entry)
WATCHED = (
    ("api_keys", "tenant_id", "UPDATE OF scopes, revoked_at, key_hash, tenant_id OR DELETE"),
    ("assistants", "tenant_id", "INSERT OR UPDATE OR DELETE"),
    ("assistant_knowledge_bases", "tenant_id", "INSERT OR UPDATE OR DELETE"),
    ("tenants", "id", "UPDATE OR DELETE"),
    ("tenant_embedding_settings", "tenant_id", "INSERT OR UPDATE OR DELETE"),
)


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION parley_entries_changed() RETURNS trigger
        LANGUAGE plpgsql SECURITY INVOKER AS $$
        BEGIN
            -- Sent at commit, once per workspace and transaction.
            IF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('parley_entries', to_jsonb(OLD)->>TG_ARGV[0]);
            ELSE
                PERFORM pg_notify('parley_entries', to_jsonb(NEW)->>TG_ARGV[0]);
            END IF;
            RETURN NULL;
        END $$
        """
    )
    for table, column, events in WATCHED:
        op.execute(
            f"CREATE TRIGGER parley_entries_changed AFTER {events} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION parley_entries_changed('{column}')"
        )
    op.execute(
        """
        CREATE FUNCTION parley_settle_quota_share(
            p_reservation_id uuid, p_held_replies integer, p_held_tokens bigint,
            p_used_replies integer, p_used_tokens bigint)
        RETURNS boolean
        LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
        DECLARE
            held record;
            counter jsonb;
            plan_scope boolean;
        BEGIN
            UPDATE quota_reservations r
            SET replies = r.replies - p_held_replies,
                tokens = GREATEST(r.tokens - p_held_tokens, 0)
            WHERE r.id = p_reservation_id
            RETURNING r.tenant_id, r.counters, r.replies, r.tokens INTO held;
            IF NOT FOUND THEN
                RETURN false;
            END IF;
            IF held.replies <= 0 AND held.tokens <= 0 THEN
                DELETE FROM quota_reservations r WHERE r.id = p_reservation_id;
            END IF;
            FOR counter IN SELECT c.value FROM jsonb_array_elements(held.counters) AS c(value)
            LOOP
                plan_scope := counter->>0 = 'plan';
                UPDATE quota_counters q
                SET replies_reserved = GREATEST(q.replies_reserved - p_held_replies, 0),
                    tokens_reserved = GREATEST(
                        q.tokens_reserved - CASE WHEN plan_scope THEN p_held_tokens ELSE 0 END,
                        0),
                    replies_used = q.replies_used + p_used_replies,
                    tokens_used = q.tokens_used
                        + CASE WHEN plan_scope THEN p_used_tokens ELSE 0 END
                WHERE q.tenant_id = held.tenant_id
                  AND q.scope = counter->>0
                  AND q.period_start = (counter->>1)::date;
            END LOOP;
            RETURN true;
        END $$
        """
    )
    op.execute(
        """
        CREATE OR REPLACE FUNCTION parley_settle_quota(
            p_reservation_id uuid, p_replies integer, p_tokens bigint)
        RETURNS boolean
        LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
        DECLARE
            held record;
        BEGIN
            SELECT r.replies, r.tokens INTO held FROM quota_reservations r
            WHERE r.id = p_reservation_id
            FOR UPDATE;
            IF NOT FOUND THEN
                RETURN false;
            END IF;
            RETURN parley_settle_quota_share(
                p_reservation_id, held.replies, held.tokens, p_replies, p_tokens);
        END $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION parley_lease_quota(
            p_tenant_id uuid, p_lease_id uuid, p_scope text, p_period date,
            p_replies_limit bigint, p_tokens_limit bigint, p_want integer,
            p_tokens_each bigint, p_expires_at timestamptz,
            p_returned uuid, p_returned_replies integer, p_returned_tokens bigint)
        RETURNS integer
        LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
        DECLARE
            counter quota_counters;
            granted bigint;
            room bigint;
        BEGIN
            PERFORM set_config('app.tenant_id', p_tenant_id::text, true),
                    set_config('synchronous_commit', 'off', true);
            IF p_returned IS NOT NULL THEN
                PERFORM parley_settle_quota_share(
                    p_returned, p_returned_replies, p_returned_tokens, 0, 0);
            END IF;
            INSERT INTO quota_counters (
                id, tenant_id, scope, period_start,
                replies_used, replies_reserved, tokens_used, tokens_reserved)
            VALUES (gen_random_uuid(), p_tenant_id, p_scope, p_period, 0, 0, 0, 0)
            ON CONFLICT (tenant_id, scope, period_start) DO NOTHING;
            SELECT * INTO counter FROM quota_counters q
            WHERE q.tenant_id = p_tenant_id AND q.scope = p_scope AND q.period_start = p_period
            FOR UPDATE;
            granted := p_want;
            IF p_replies_limit IS NOT NULL THEN
                room := p_replies_limit - counter.replies_used - counter.replies_reserved;
                granted := LEAST(granted, GREATEST(room / 4, 1), room);
            END IF;
            IF p_tokens_limit IS NOT NULL AND p_tokens_each > 0 THEN
                room := (p_tokens_limit - counter.tokens_used - counter.tokens_reserved)
                        / p_tokens_each;
                granted := LEAST(granted, GREATEST(room / 4, 1), room);
            END IF;
            IF granted < 1 THEN
                RETURN 0;
            END IF;
            UPDATE quota_counters q
            SET replies_reserved = q.replies_reserved + granted,
                tokens_reserved = q.tokens_reserved + granted * p_tokens_each
            WHERE q.id = counter.id;
            INSERT INTO quota_reservations (id, tenant_id, counters, replies, tokens, expires_at)
            VALUES (
                p_lease_id, p_tenant_id, jsonb_build_array(jsonb_build_array(p_scope, p_period)),
                granted, granted * p_tokens_each, p_expires_at);
            RETURN granted;
        END $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION parley_finish_chat_reply(
            p_tenant_id uuid, p_conversation_id uuid, p_assistant_id uuid, p_channel text,
            p_external_user_id text, p_title text,
            p_question_id uuid, p_question text, p_question_meta jsonb,
            p_answer_id uuid, p_content text, p_status text, p_citations jsonb,
            p_prompt_tokens integer, p_completion_tokens integer, p_model text,
            p_latency_ms integer, p_meta jsonb,
            p_usage_id uuid, p_usage_outcome text, p_cost_micros bigint,
            p_reservation_id uuid, p_held_replies integer, p_held_tokens bigint,
            p_used_replies integer, p_used_tokens bigint,
            p_key_id uuid, p_last_used_resolution interval)
        RETURNS timestamptz
        LANGUAGE plpgsql VOLATILE SECURITY INVOKER AS $$
        DECLARE
            saved_at timestamptz;
        BEGIN
            PERFORM set_config('app.tenant_id', p_tenant_id::text, true);
            INSERT INTO conversations (
                id, tenant_id, assistant_id, channel, external_user_id, title, status,
                last_message_at, metadata)
            VALUES (
                p_conversation_id, p_tenant_id, p_assistant_id, p_channel::channel,
                p_external_user_id, p_title, 'open', now(), '{}');
            -- The question dates from when the reply began, by the database's clock: before
            -- the answer, which the same transaction saves, so they list in order.
            INSERT INTO messages (
                id, tenant_id, conversation_id, role, content, status, citations,
                prompt_tokens, completion_tokens, metadata, created_at)
            VALUES (
                p_question_id, p_tenant_id, p_conversation_id, 'user', p_question, 'complete',
                '[]', 0, 0, p_question_meta,
                now() - make_interval(secs => GREATEST(p_latency_ms, 1) / 1000.0));
            -- The answer and its usage row; no reservation of its own to settle there.
            saved_at := parley_finish_reply(
                p_tenant_id, p_conversation_id, p_answer_id, p_content, p_status, p_citations,
                p_prompt_tokens, p_completion_tokens, p_model, p_latency_ms, p_meta,
                p_usage_id, p_assistant_id, p_usage_outcome, p_cost_micros, NULL, 0, 0);
            PERFORM parley_settle_quota_share(
                p_reservation_id, p_held_replies, p_held_tokens, p_used_replies, p_used_tokens);
            IF p_key_id IS NOT NULL THEN
                UPDATE api_keys k SET last_used_at = now()
                WHERE k.id = p_key_id
                  AND (k.last_used_at IS NULL
                       OR k.last_used_at < now() - p_last_used_resolution);
            END IF;
            RETURN saved_at;
        END $$
        """
    )
    for signature in (SHARE, LEASE, FINISH):
        op.execute(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO {APP_ROLE}")
    op.execute(f"DROP FUNCTION {_previous('20261207_e4a9c2f7b1d3_chat_reply_functions').OPEN}")


def _previous(name: str) -> Any:
    return importlib.import_module(f"migrations.versions.{name}")


def downgrade() -> None:
    op.execute(_previous("20261207_f1c3a8e5d2b7_finish_reply_function").SETTLE_SQL)
    previous = _previous("20261207_e4a9c2f7b1d3_chat_reply_functions")
    op.execute(previous.OPEN_SQL)
    op.execute(f"REVOKE ALL ON FUNCTION {previous.OPEN} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {previous.OPEN} TO {APP_ROLE}")
    for signature in (FINISH, LEASE, SHARE):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
    for table, _, _ in WATCHED:
        op.execute(f"DROP TRIGGER IF EXISTS parley_entries_changed ON {table}")
    op.execute("DROP FUNCTION IF EXISTS parley_entries_changed()")
