// Dure's "saved" acknowledgement for y-websocket clients.
//
// A client that connects with the query parameter `ack=1` receives, once its updates are
// durable, the message `varUint(100) · varUint(n)`: n is how many update-bearing frames (sync
// step 2 or update) this connection has sent that are now stored; n never decreases.
// y-websocket has no handler for type 100 and logs `Unable to compute message` for each
// one; `onSaved` registers the handler and reports n.
//
// No dependencies: the varUint is read here, from the lib0 decoder y-websocket passes
// (its `arr` and `pos` fields), so this package cannot pull in a second copy of lib0.

/** Dure's message type for "saved". */
export const MESSAGE_SAVED = 100

/** @type {WeakMap<object, {saved: number, listeners: Set<(n: number) => void>}>} */
const registry = new WeakMap()

/**
 * Reads an unsigned LEB128 varint (lib0's varUint) from a lib0 decoder.
 * @param {{arr: Uint8Array, pos: number}} decoder
 * @returns {number}
 */
export function readVarUint (decoder) {
  let num = 0
  let mult = 1
  for (;;) {
    if (decoder.pos >= decoder.arr.length) throw new Error('y-dure-ack: truncated saved message')
    const byte = decoder.arr[decoder.pos++]
    num += (byte & 0x7f) * mult
    if (byte < 0x80) return num
    mult *= 128
    if (mult > Number.MAX_SAFE_INTEGER) throw new Error('y-dure-ack: saved count too large')
  }
}

/**
 * Calls `listener(n)` whenever Dure says n update frames of this connection are stored.
 * Registers the type-100 handler on `provider` once (several listeners may share it).
 * The count is per connection: after a reconnect it starts again from the new socket's
 * frames. Returns a function that removes the listener.
 *
 * @param {{messageHandlers: Array<Function | undefined>}} provider a y-websocket WebsocketProvider
 * @param {(n: number) => void} listener
 * @returns {() => void}
 */
export function onSaved (provider, listener) {
  let entry = registry.get(provider)
  if (entry === undefined) {
    const created = { saved: 0, listeners: new Set() }
    entry = created
    registry.set(provider, created)
    provider.messageHandlers[MESSAGE_SAVED] = (_encoder, decoder) => {
      const n = readVarUint(decoder)
      created.saved = n
      for (const l of [...created.listeners]) l(n)
    }
  }
  entry.listeners.add(listener)
  const listeners = entry.listeners
  return () => {
    listeners.delete(listener)
  }
}

/**
 * The last count Dure reported for `provider` (0 before the first acknowledgement).
 * @param {object} provider
 * @returns {number}
 */
export function savedCount (provider) {
  return registry.get(provider)?.saved ?? 0
}
