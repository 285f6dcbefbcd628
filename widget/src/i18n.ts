/** The widget's own words, in English and Russian. */

export type Lang = "en" | "ru";

const en = {
  openChat: "Open chat",
  closeChat: "Close chat",
  chatWith: "Chat with {name}",
  dismissGreeting: "Dismiss",
  inputLabel: "Your message",
  placeholder: "Type your message…",
  send: "Send",
  connecting: "Connecting…",
  online: "Online",
  reconnecting: "Reconnecting…",
  offline: "You are offline. Messages will be sent when the connection is back.",
  unreachable: "Can't reach the assistant. Still trying…",
  sending: "Sending…",
  notSent: "Not sent.",
  retry: "Retry",
  rateLimited: "Too many messages. Please wait a moment.",
  tooLong: "This message is too long.",
  somethingWrong: "Something went wrong. Please try again.",
  typing: "The assistant is typing",
  helpful: "Helpful",
  notHelpful: "Not helpful",
  sources: "Sources",
  you: "You",
  unread: "{count} new",
};

export type Strings = typeof en;

const ru: Strings = {
  openChat: "Открыть чат",
  closeChat: "Закрыть чат",
  chatWith: "Чат: {name}",
  dismissGreeting: "Скрыть",
  inputLabel: "Ваше сообщение",
  placeholder: "Напишите сообщение…",
  send: "Отправить",
  connecting: "Подключение…",
  online: "В сети",
  reconnecting: "Переподключение…",
  offline: "Нет соединения. Сообщения отправятся, когда связь восстановится.",
  unreachable: "Не удаётся связаться с ассистентом. Пробуем снова…",
  sending: "Отправка…",
  notSent: "Не отправлено.",
  retry: "Повторить",
  rateLimited: "Слишком много сообщений. Подождите немного.",
  tooLong: "Сообщение слишком длинное.",
  somethingWrong: "Что-то пошло не так. Попробуйте ещё раз.",
  typing: "Ассистент печатает",
  helpful: "Полезно",
  notHelpful: "Бесполезно",
  sources: "Источники",
  you: "Вы",
  unread: "Новых: {count}",
};

/**
 * The first language given wins: the script's data-lang, then the page's <html lang>, then the
 * browser's. Russian when it starts with "ru", English otherwise.
 */
export function chooseLang(...candidates: Array<string | null | undefined>): Lang {
  const first = candidates.map((c) => (c ?? "").trim().toLowerCase()).find((c) => c !== "");
  return first?.startsWith("ru") ? "ru" : "en";
}

export const stringsFor = (lang: Lang): Strings => (lang === "ru" ? ru : en);

export const fill = (template: string, values: Record<string, string | number>): string =>
  template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in values ? String(values[name]) : whole,
  );
