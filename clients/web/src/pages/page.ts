/** A screen: its root element, and what to do when it is left or the language changes. */
export interface Page {
  el: HTMLElement;
  destroy?(): void;
  /** Updates visible strings in place; without it, a language change rebuilds the page. */
  relabel?(): void;
}
