"""Answering Telegram updates: one aiogram Dispatcher serves every workspace's bots.

The worker (tasks.py) feeds each update to the Dispatcher with a `BotContext` naming the
workspace, the bot row and the assistant. FSM state is kept in Redis, keyed per bot.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from aiogram import Bot, Dispatcher, F, Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.storage.base import DefaultKeyBuilder
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import KeyboardButton, Message, ReplyKeyboardMarkup, User
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from backend.assistants.engine import ReplyRun, prepare_reply
from backend.db import unit_of_work
from backend.errors import NotFound
from backend.models import (
    Assistant,
    Channel,
    Conversation,
    GroupMode,
    TelegramChat,
    TelegramDeadLetter,
    TelegramUser,
)
from backend.redis import get_redis
from backend.telegram.formatting import escape, split_message, to_telegram_html
from backend.telegram.sender import send_html
from backend.usage.quota import QuotaExceeded, VisitorCapReached

log = structlog.get_logger(__name__)

TEXTS = {
    "en": {
        "help": "Ask me a question in your own words and I'll answer from what I know. "
        "/reset starts a new conversation, /human asks for a person.",
        "reset": "Done: a new conversation starts now.",
        "human": "Thanks, I've passed on that you'd like to talk to a person. "
        "Someone from the team will get back to you here.",
        "text_only": "Sorry, I can only read text messages for now.",
        "visitor_cap": "You've reached today's message limit. Please come back tomorrow.",
        "plan_limit": "I can't take more questions right now. Please try again later.",
        "welcome": "Hello! How can I help?",
    },
    "ru": {
        "help": "Задайте вопрос своими словами, и я отвечу по тому, что знаю. "
        "/reset начинает новый разговор, /human зовёт человека.",
        "reset": "Готово: начинаем новый разговор.",
        "human": "Спасибо, я передал, что вы хотите поговорить с человеком. "
        "Сотрудник ответит вам здесь.",
        "text_only": "Извините, пока я понимаю только текстовые сообщения.",
        "visitor_cap": "Вы исчерпали лимит сообщений на сегодня. Возвращайтесь завтра.",
        "plan_limit": "Сейчас я не могу принять новые вопросы. Попробуйте позже.",
        "welcome": "Здравствуйте! Чем могу помочь?",
    },
}


@dataclass(frozen=True)
class BotContext:
    tenant_id: uuid.UUID
    bot_id: uuid.UUID
    telegram_id: int
    username: str
    group_mode: GroupMode
    assistant_id: uuid.UUID
    language: str
    welcome_message: str | None
    suggested_questions: list[str]

    def text(self, name: str) -> str:
        return TEXTS.get(self.language, TEXTS["en"])[name]


router = Router(name="parley")


def build_dispatcher() -> Dispatcher:
    # Memory storage keyed per bot: Parley's dialogs keep no FSM state yet; data-collecting
    # dialogs will move it to Redis with the same key builder.
    dispatcher = Dispatcher(storage=MemoryStorage())
    dispatcher.fsm.storage.key_builder = DefaultKeyBuilder(with_bot_id=True)  # type: ignore[attr-defined]
    dispatcher.include_router(router)
    return dispatcher


def addressed_to_bot(message: Message, parley: BotContext) -> bool:
    """In groups (in mention mode), only messages that mention the bot or reply to it."""
    if message.chat.type == "private" or parley.group_mode is GroupMode.all:
        return True
    reply = message.reply_to_message
    if (
        reply is not None
        and reply.from_user is not None
        and reply.from_user.id == parley.telegram_id
    ):
        return True
    return f"@{parley.username}".lower() in (message.text or "").lower()


async def deliver(bot: Bot, parley: BotContext, chat_id: int, html: str) -> None:
    """Send (split under Telegram's limit), recording what keeps failing as dead letters."""
    for part in split_message(html):
        outcome = await send_html(get_redis(), bot, parley.bot_id, chat_id, part)
        if not outcome.sent:
            async with unit_of_work(tenant_id=parley.tenant_id) as session:
                session.add(
                    TelegramDeadLetter(
                        tenant_id=parley.tenant_id,
                        bot_id=parley.bot_id,
                        chat_id=chat_id,
                        html=part,
                        error=outcome.error or "not sent",
                        attempts=outcome.attempts,
                    )
                )


@router.message(CommandStart())
async def on_start(message: Message, bot: Bot, parley: BotContext) -> None:
    await _remember(message, parley)
    keyboard = None
    if parley.suggested_questions:
        keyboard = ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text=q)] for q in parley.suggested_questions[:6]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
    text = escape(parley.welcome_message or parley.text("welcome"))
    await bot.send_message(message.chat.id, text, parse_mode="HTML", reply_markup=keyboard)


@router.message(Command("help"))
async def on_help(message: Message, bot: Bot, parley: BotContext) -> None:
    await deliver(bot, parley, message.chat.id, escape(parley.text("help")))


@router.message(Command("reset"))
async def on_reset(message: Message, bot: Bot, parley: BotContext) -> None:
    await _remember(message, parley, new_conversation=True)
    await deliver(bot, parley, message.chat.id, escape(parley.text("reset")))


@router.message(Command("human"))
async def on_human(message: Message, bot: Bot, parley: BotContext) -> None:
    await _remember(message, parley, wants_human=True)
    await deliver(bot, parley, message.chat.id, escape(parley.text("human")))


@router.message(F.text)
async def on_text(message: Message, bot: Bot, parley: BotContext) -> None:
    if not addressed_to_bot(message, parley):
        return
    conversation_id = await _remember(message, parley)
    await bot.send_chat_action(message.chat.id, "typing")
    text = (message.text or "").replace(f"@{parley.username}", "").strip() or (message.text or "")
    try:
        plan = await prepare_reply(
            parley.tenant_id,
            text[:8000],
            conversation_id=conversation_id,
            question_meta={"telegram_message_id": message.message_id},
        )
    except QuotaExceeded as exc:
        kind = "visitor_cap" if isinstance(exc, VisitorCapReached) else "plan_limit"
        await deliver(bot, parley, message.chat.id, escape(parley.text(kind)))
        return
    run = ReplyRun(plan)
    async for _ in run.deltas():
        pass
    result = await run.finish()
    html = to_telegram_html(result.answer.content, result.answer.citations)
    await deliver(bot, parley, message.chat.id, html)


@router.message()
async def on_anything_else(message: Message, bot: Bot, parley: BotContext) -> None:
    """Photos, voice, stickers, files: a polite word, in groups only when addressed."""
    if message.chat.type != "private":
        return
    await deliver(bot, parley, message.chat.id, escape(parley.text("text_only")))


async def _remember(
    message: Message,
    parley: BotContext,
    *,
    new_conversation: bool = False,
    wants_human: bool = False,
) -> uuid.UUID:
    """Store the user (first and last seen) and the chat; the chat's current conversation."""
    sender = message.from_user
    async with unit_of_work(tenant_id=parley.tenant_id) as session:
        if sender is not None:
            await _upsert_user(session, parley, sender, wants_human)
        chat = await session.scalar(
            select(TelegramChat).where(
                TelegramChat.bot_id == parley.bot_id, TelegramChat.chat_id == message.chat.id
            )
        )
        if chat is None:
            chat = TelegramChat(
                tenant_id=parley.tenant_id,
                bot_id=parley.bot_id,
                chat_id=message.chat.id,
                chat_type=message.chat.type,
            )
            session.add(chat)
        if chat.conversation_id is None or new_conversation:
            conversation = Conversation(
                tenant_id=parley.tenant_id,
                assistant_id=parley.assistant_id,
                channel=Channel.telegram,
                # Per-user daily caps count by this: the person, not the chat.
                external_user_id=f"tg:{sender.id if sender else message.chat.id}",
                title=message.chat.title,
                meta={"bot_id": str(parley.bot_id), "chat_id": message.chat.id},
            )
            session.add(conversation)
            await session.flush()
            chat.conversation_id = conversation.id
        await session.flush()
        return chat.conversation_id


async def _upsert_user(session: Any, parley: BotContext, sender: User, wants_human: bool) -> None:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "username": sender.username,
        "first_name": sender.first_name,
        "last_name": sender.last_name,
        "language_code": sender.language_code,
        "last_seen_at": now,
    }
    if wants_human:
        values["wants_human_at"] = now
    statement = insert(TelegramUser).values(
        id=uuid.uuid4(),
        tenant_id=parley.tenant_id,
        bot_id=parley.bot_id,
        telegram_id=sender.id,
        **values,
    )
    await session.execute(
        statement.on_conflict_do_update(index_elements=["bot_id", "telegram_id"], set_=values)
    )


async def context_for(session: Any, bot_row: Any) -> BotContext:
    assistant = await session.get(Assistant, bot_row.assistant_id)
    if assistant is None:
        raise NotFound("The bot's assistant is gone.")
    return BotContext(
        tenant_id=bot_row.tenant_id,
        bot_id=bot_row.id,
        telegram_id=bot_row.telegram_id,
        username=bot_row.username,
        group_mode=bot_row.group_mode,
        assistant_id=assistant.id,
        language=assistant.language,
        welcome_message=assistant.welcome_message,
        suggested_questions=list(assistant.suggested_questions),
    )
