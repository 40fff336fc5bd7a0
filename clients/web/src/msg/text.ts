// A message's text as shown: links made clickable (a link to a Dure document shows the
// document's title, only when doc.titles gave one to this reader), mentions highlighted. The
// text is never parsed as HTML: only text nodes and elements built here.

import { h, icon } from '../dom';
import { I } from '../ui/icons';
import { t } from '../i18n';
import { docPath } from '../router';

const URL_RE = /https?:\/\/[^\s<>"'`]+/g;
const TRAILING = /[.,;:!?)\]}>»”’]+$/;
const DOC_PATH = /^\/d\/([A-Za-z0-9_-]{1,128})\/?$/;

/** The document id a URL points to on this server, or null. */
export function docIdOf(url: string): string | null {
  try {
    const u = new URL(url);
    if (u.origin !== location.origin) return null;
    return DOC_PATH.exec(u.pathname)?.[1] ?? null;
  } catch {
    return null;
  }
}

/** Splits `text` into plain runs and URLs (trailing punctuation left out of the URL). */
function tokens(text: string): { url: boolean; s: string }[] {
  const out: { url: boolean; s: string }[] = [];
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    const start = m.index ?? 0;
    let url = m[0];
    const tail = TRAILING.exec(url)?.[0] ?? '';
    if (tail) url = url.slice(0, url.length - tail.length);
    if (!url.replace(/^https?:\/\//, '')) continue;
    if (start > last) out.push({ url: false, s: text.slice(last, start) });
    out.push({ url: true, s: url });
    last = start + url.length;
  }
  if (last < text.length) out.push({ url: false, s: text.slice(last) });
  return out;
}

/** The ids of Dure documents linked in `text`, in order, without repeats, at most 10. */
export function docIdsIn(text: string): string[] {
  const ids: string[] = [];
  for (const tok of tokens(text)) {
    if (!tok.url) continue;
    const id = docIdOf(tok.s);
    if (id && !ids.includes(id)) ids.push(id);
  }
  return ids.slice(0, 10);
}

/** The link to a document as the app writes it into a message. */
export function docLink(id: string): string {
  return location.origin + docPath(id);
}

export interface TextContext {
  /** Names of the mentioned people, by user id. */
  mentions: { id: string; name: string }[];
  me: string;
  /** The message's `docs`: only these links get a title. */
  docs: string[];
  titles: Map<string, string | null>;
}

function withMentions(s: string, ctx: TextContext): (Node | string)[] {
  const names = ctx.mentions.filter((m) => m.name).sort((a, b) => b.name.length - a.name.length);
  if (!names.length) return [s];
  const out: (Node | string)[] = [];
  let i = 0;
  let run = '';
  outer: while (i < s.length) {
    if (s[i] === '@') {
      for (const m of names) {
        if (s.startsWith(m.name, i + 1)) {
          if (run) out.push(run);
          run = '';
          out.push(h('span', { class: 'mention' + (m.id === ctx.me ? ' mention-me' : ''), 'data-user': m.id }, '@' + m.name));
          i += 1 + m.name.length;
          continue outer;
        }
      }
    }
    run += s[i];
    i++;
  }
  if (run) out.push(run);
  return out;
}

/** The text as nodes: plain text, mention chips, links (document links titled if allowed). */
export function renderText(text: string, ctx: TextContext): (Node | string)[] {
  const out: (Node | string)[] = [];
  for (const tok of tokens(text)) {
    if (!tok.url) {
      out.push(...withMentions(tok.s, ctx));
      continue;
    }
    const id = docIdOf(tok.s);
    if (id) {
      const title = ctx.docs.includes(id) ? ctx.titles.get(id) : undefined;
      const titled = typeof title === 'string';
      out.push(
        h(
          'a',
          {
            class: 'msg-doc-link' + (titled ? ' titled' : ''),
            href: docPath(id),
            'data-link': true,
            'data-testid': 'doc-link',
            'data-doc-id': id,
            'data-titled': String(titled),
            // Whether doc.titles has answered for it yet (browser tests wait on this).
            'data-title': titled ? 'shown' : !ctx.docs.includes(id) || ctx.titles.has(id) ? 'none' : 'pending',
            title: tok.s,
          },
          typeof title === 'string' ? [icon(I.doc, 14), h('span', {}, title || t('untitled'))] : tok.s,
        ),
      );
      continue;
    }
    out.push(h('a', { href: tok.s, target: '_blank', rel: 'noopener noreferrer nofollow' }, tok.s));
  }
  return out;
}
