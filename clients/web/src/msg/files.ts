// Attachments over HTTP (docs/messaging.md, Files): upload the raw bytes, then send the message
// naming the file ids; downloads and thumbnails are plain same-origin URLs (the cookie goes along).

import { lang, t, type Key } from '../i18n';
import type { Attachment } from './types';

const enc = encodeURIComponent;

export function fileUrl(conv: string, file: string): string {
  return `/api/conversations/${enc(conv)}/files/${enc(file)}`;
}

export function thumbnailUrl(conv: string, file: string): string {
  return fileUrl(conv, file) + '/thumbnail';
}

/** An upload the server refused or that never reached it, with its code and a sentence. */
export class UploadError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Why a file was refused, in the user's language. */
export function uploadErrorText(code: string, name: string): string {
  const key = ('fileErr_' + code) as Key;
  const known = ['too_large', 'type_mismatch', 'type_not_allowed', 'not_found', 'offline', 'rate_limited', 'unavailable'];
  return known.includes(code) ? t(key, { name }) : t('fileErr_other', { name, code });
}

/** Uploads one file to the conversation; resolves the server's description of it. */
export async function uploadFile(conv: string, file: File): Promise<Attachment> {
  let res: Response;
  try {
    res = await fetch(`/api/conversations/${enc(conv)}/files?name=${enc(file.name)}`, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': file.type || 'application/octet-stream', Accept: 'application/json' },
      body: file,
    });
  } catch {
    throw new UploadError('offline', uploadErrorText('offline', file.name));
  }
  if (!res.ok) {
    let code = 'http_' + res.status;
    try {
      const body = (await res.json()) as { error?: string };
      if (body.error) code = body.error;
    } catch {
      // not JSON: keep the status
    }
    if (res.status === 413 && code.startsWith('http_')) code = 'too_large';
    throw new UploadError(code, uploadErrorText(code, file.name));
  }
  return (await res.json()) as Attachment;
}

/** "12 KB", "3.4 MB" in the current language's number format. */
export function formatSize(bytes: number): string {
  const fmt = (n: number, digits: number): string =>
    new Intl.NumberFormat(lang() === 'ko' ? 'ko-KR' : 'en-GB', { maximumFractionDigits: digits }).format(n);
  if (bytes < 1024) return t('sizeBytes', { n: fmt(bytes, 0) });
  if (bytes < 1024 * 1024) return t('sizeKB', { n: fmt(bytes / 1024, 0) });
  if (bytes < 1024 * 1024 * 1024) return t('sizeMB', { n: fmt(bytes / (1024 * 1024), 1) });
  return t('sizeGB', { n: fmt(bytes / (1024 * 1024 * 1024), 1) });
}

export function isImage(a: Attachment): boolean {
  return a.type.startsWith('image/');
}
