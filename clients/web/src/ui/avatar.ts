import { h } from '../dom';

// Colours readable with white text (contrast ≥ 4.5:1) and distinct from each other.
const PALETTE = ['#2563eb', '#db2777', '#047857', '#b45309', '#7c3aed', '#0e7490', '#dc2626', '#4f46e5', '#4d7c0f', '#a21caf'];

/** A stable colour for a user id (or any string). */
export function colorFor(key: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return PALETTE[(hash >>> 0) % PALETTE.length] ?? '#2563eb';
}

/** One or two letters: "Kim Minji" → "KM", "김민지" → "민지" (given name), "" → "?". */
export function initials(name: string): string {
  const trimmed = name.trim();
  if (!trimmed) return '?';
  // Hangul names are usually family name + given name without a space: show the given name.
  if (/^[\uac00-\ud7a3]{2,4}$/.test(trimmed)) return trimmed.slice(1, 3);
  const parts = trimmed.split(/\s+/).filter(Boolean);
  const first = parts[0]?.[0] ?? '?';
  const last = parts.length > 1 ? (parts[parts.length - 1]?.[0] ?? '') : '';
  return (first + last).toUpperCase();
}

export function avatar(name: string, color: string, size: 'sm' | 'md' = 'md', title = name): HTMLElement {
  const el = h('span', { class: `avatar avatar-${size}`, title, role: 'img', 'aria-label': title }, initials(name));
  el.style.backgroundColor = color;
  return el;
}
