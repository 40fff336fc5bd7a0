import { errorText, t, type Key } from '../i18n';

const KNOWN = new Set([
  'not_found',
  'forbidden',
  'quota_exceeded',
  'too_large',
  'rate_limited',
  'unavailable',
  'offline',
  'bad_request',
  'unavailable_feature',
]);

/** A messaging error code (docs/messaging.md), in the app's language. */
export function msgErrorText(code: string, fallback: string): string {
  return KNOWN.has(code) ? t(('msgErr_' + code) as Key) : errorText(code, fallback);
}
