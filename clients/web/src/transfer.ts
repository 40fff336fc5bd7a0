import { exportUrl } from './api';
import { errorText } from './i18n';

/** Lets the user choose a .md file; resolves its text and a title from its name. */
export function pickMarkdownFile(): Promise<{ title: string; text: string } | null> {
  return new Promise((resolve) => {
    const input = document.createElement('input');
    input.type = 'file';
    input.accept = '.md,.markdown,text/markdown,text/plain';
    input.addEventListener('change', () => {
      const file = input.files?.[0];
      if (!file) return resolve(null);
      file.text().then(
        (text) => resolve({ title: file.name.replace(/\.(md|markdown|txt)$/i, ''), text }),
        () => resolve(null),
      );
    });
    input.addEventListener('cancel', () => resolve(null));
    input.click();
  });
}

/**
 * Downloads the server-side export. Fetched first (not a plain link) so that a failure shows
 * a message instead of a broken download; the server names the file (Content-Disposition),
 * else the title is used.
 */
export async function downloadExport(id: string, title: string, format: 'md' | 'html' | 'txt'): Promise<void> {
  const res = await fetch(exportUrl(id, format), { credentials: 'same-origin' });
  if (!res.ok) {
    let message = res.statusText || String(res.status);
    try {
      const body = (await res.json()) as { error?: string; message?: string };
      if (body.message) message = body.message;
      if (body.error) message = errorText(body.error, message);
    } catch {
      // keep the status text
    }
    throw new Error(message);
  }
  const blob = await res.blob();
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `${(title || 'document').replace(/[\\/:*?"<>|]+/g, '_')}.${format}`;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}
