/** Chat ids the bridge accepts (its CHAT_ID_PATTERN). */
export const CHAT_ID_PATTERN = /^[A-Za-z0-9._:~@+=-]{1,200}$/;

export function newChatId(): string {
  return crypto.randomUUID();
}
