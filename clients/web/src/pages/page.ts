import type { Route } from '../router';

/** A screen: its root element, and what to do when it is left or the language changes. */
export interface Page {
  el: HTMLElement;
  destroy?(): void;
  /** Updates visible strings in place; without it, a language change rebuilds the page. */
  relabel?(): void;
  /** Takes a new address in place (true), or lets the app build the page for it (false). */
  reroute?(route: Route): boolean;
}
