/**
 * The session key: on an anonymous gateway, what lets a later connection (the
 * same tab after a reload) list the tasks an earlier one scheduled.
 */

/** Where a browser tab keeps its key: sessionStorage, so per tab, surviving a reload. */
export const SESSION_STORAGE_KEY = "stirfried-session";

/** A new random session key: 32 random bytes, base64url (43 characters). */
export function createSessionKey(): string {
  const bytes = new Uint8Array(32);
  globalThis.crypto.getRandomValues(bytes);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Whether `key` has the shape the gateway accepts: 22-128 characters of `A-Za-z0-9_-`. */
export function isSessionKey(key: string): boolean {
  return /^[A-Za-z0-9_-]{22,128}$/.test(key);
}

/**
 * This tab's session key from sessionStorage, created on first use; `undefined`
 * where there is no sessionStorage (Node.js) or it may not be used (privacy settings, sandboxes).
 */
export function tabSessionKey(storage?: Storage): string | undefined {
  try {
    const store = storage ?? (globalThis as { sessionStorage?: Storage }).sessionStorage;
    if (!store) return undefined;
    const existing = store.getItem(SESSION_STORAGE_KEY);
    if (existing && isSessionKey(existing)) return existing;
    const key = createSessionKey();
    store.setItem(SESSION_STORAGE_KEY, key);
    return key;
  } catch {
    return undefined; // storage refused (SecurityError, quota): no session, as in Node.js
  }
}
