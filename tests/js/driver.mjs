// Drives real Yjs clients (`yjs` + `y-websocket`'s `WebsocketProvider`) for Dure's black-box
// tests. The Rust side (tests/src/jsclient.rs) talks to this process over JSON lines:
//
//   stdin:  {"id": 7, "cmd": "insert", "client": "a", "index": 0, "text": "hi"}
//   stdout: {"id": 7, "result": null}            or  {"id": 7, "error": "..."}
//   stdout: {"event": "status", "client": "a", ...}   (pushed, no id)
//
// The first line is always {"event": "ready", ...}. Requests run concurrently: a `wait*`
// request does not block the ones after it, so responses may come out of order.
// Nothing but protocol lines goes to stdout; diagnostics go to stderr.
//
// Text indexes and lengths are in UTF-16 code units, as Yjs counts them.
//
// Commands (all but connect/list/ping/quit take `client`; waits take `timeoutMs`, default 10 s):
//   connect {client, url, doc, params?, protocols?, headers?, awareness?, maxBackoffMs?}
//       -> {clientId, url}; the provider connects to `${url}/${doc}?${params}`
//   insert {index, text}   delete {index, len}   text -> string   waitText {text}
//   synced -> bool   waitSynced   status -> counters   waitStatus {match} -> status
//   setAwareness {state}   setAwarenessField {field, value}   awareness -> {clientId: state}
//   waitAwareness {clientId, state? | present?} -> states   clientId -> number
//   encodeState -> [bytes]   disconnect   reconnect   destroy   list -> [names]   ping   quit
// Events: status {status}, sync {synced}, close {code, reason, by}, closed {code, reason}
// (terminal), error {message}, uncaught {message}.

import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { WebSocket } from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

// Libraries must not corrupt the protocol stream: anything they `console.log` goes to stderr.
console.log = (...args) => console.error(...args)
console.info = (...args) => console.error(...args)
console.debug = (...args) => console.error(...args)

const DEFAULT_TIMEOUT_MS = 10000

/** @param {object} msg */
const send = (msg) => {
  process.stdout.write(JSON.stringify(msg) + '\n')
}

/** @param {string} client @param {string} event @param {object} data */
const pushEvent = (client, event, data = {}) => send({ event, client, ...data })

const versionOf = (pkg) => {
  try {
    const url = new URL(`./node_modules/${pkg}/package.json`, import.meta.url)
    return JSON.parse(readFileSync(url, 'utf8')).version
  } catch {
    return null
  }
}

class RequestError extends Error {}

/** @type {Map<string, ClientEntry>} */
const clients = new Map()

/**
 * One named client: a Y.Doc, its provider and the counters the tests inspect.
 */
class ClientEntry {
  constructor (name) {
    this.name = name
    this.doc = new Y.Doc()
    this.text = this.doc.getText('text')
    /** @type {WebsocketProvider | null} */
    this.provider = null
    /** @type {Set<() => void>} re-evaluated whenever anything observable changes */
    this.waiters = new Set()
    this.notifyQueued = false
    this.stats = {
      // provider `status` events: one `connecting` per socket created (first try and every retry)
      attempts: 0,
      opens: 0,
      disconnects: 0,
      // provider `connection-close` events, split by who closed
      closes: 0,
      serverCloses: 0,
      localCloses: 0,
      // local closes while the provider still wanted to be connected: y-websocket's
      // "no message for 30 s" watchdog
      watchdogCloses: 0,
      connectionErrors: 0,
      messagesReceived: 0,
      bytesReceived: 0,
      messagesSent: 0,
      bytesSent: 0,
      lastMessageAt: 0,
      lastClose: null,
      terminalClose: null,
      lastError: null
    }
  }

  // Deferred to a microtask so that waiters see the provider's state after it finished
  // handling the event (y-websocket emits `connection-close` before updating its flags).
  notify () {
    if (this.notifyQueued) return
    this.notifyQueued = true
    queueMicrotask(() => {
      this.notifyQueued = false
      for (const waiter of [...this.waiters]) waiter()
    })
  }

  status () {
    const p = this.provider
    const s = this.stats
    return {
      connected: p !== null && p.wsconnected,
      connecting: p !== null && p.wsconnecting,
      synced: p !== null && p.synced,
      shouldConnect: p !== null && p.shouldConnect,
      url: p !== null ? p.url : null,
      unsuccessfulReconnects: p !== null ? p.wsUnsuccessfulReconnects : 0,
      attempts: s.attempts,
      opens: s.opens,
      disconnects: s.disconnects,
      closes: s.closes,
      serverCloses: s.serverCloses,
      localCloses: s.localCloses,
      watchdogCloses: s.watchdogCloses,
      connectionErrors: s.connectionErrors,
      messagesReceived: s.messagesReceived,
      bytesReceived: s.bytesReceived,
      messagesSent: s.messagesSent,
      bytesSent: s.bytesSent,
      msSinceLastMessage: s.lastMessageAt === 0 ? null : Date.now() - s.lastMessageAt,
      lastClose: s.lastClose,
      terminalClose: s.terminalClose,
      lastError: s.lastError
    }
  }

  awarenessStates () {
    const out = {}
    if (this.provider === null) return out
    for (const [clientId, state] of this.provider.awareness.getStates()) {
      out[String(clientId)] = state
    }
    return out
  }

  destroy () {
    for (const waiter of [...this.waiters]) waiter(new RequestError(`client ${this.name} destroyed`))
    this.waiters.clear()
    if (this.provider !== null) this.provider.destroy()
    this.doc.destroy()
  }
}

/**
 * A `ws` WebSocket that sends the given headers (only non-browser clients can) and counts
 * traffic. y-websocket constructs it as `new WS(url, protocols)`.
 */
const socketClass = (entry, headers) => class CountingWebSocket extends WebSocket {
  constructor (url, protocols) {
    super(url, protocols, { headers })
    this.on('message', (data) => {
      entry.stats.messagesReceived++
      entry.stats.bytesReceived += data.byteLength ?? data.length ?? 0
      entry.stats.lastMessageAt = Date.now()
      entry.notify()
    })
  }

  send (data, ...rest) {
    entry.stats.messagesSent++
    entry.stats.bytesSent += data.byteLength ?? data.length ?? 0
    super.send(data, ...rest)
  }
}

const wireEvents = (entry, provider) => {
  const name = entry.name
  const s = entry.stats
  provider.on('status', ({ status }) => {
    if (status === 'connecting') s.attempts++
    else if (status === 'connected') s.opens++
    else if (status === 'disconnected') s.disconnects++
    pushEvent(name, 'status', { status })
    entry.notify()
  })
  provider.on('sync', (synced) => {
    pushEvent(name, 'sync', { synced })
    entry.notify()
  })
  provider.on('connection-close', (event) => {
    s.closes++
    if (event != null) {
      s.serverCloses++
      s.lastClose = { code: event.code, reason: String(event.reason ?? ''), wasClean: Boolean(event.wasClean) }
    } else {
      s.localCloses++
      if (provider.shouldConnect) s.watchdogCloses++
    }
    pushEvent(name, 'close', event != null
      ? { code: event.code, reason: String(event.reason ?? ''), by: 'server' }
      : { by: provider.shouldConnect ? 'watchdog' : 'local' })
    entry.notify()
  })
  provider.on('closed', ({ code, reason }) => {
    s.terminalClose = { code, reason: String(reason ?? ''), wasClean: Boolean(s.lastClose?.wasClean) }
    pushEvent(name, 'closed', { code, reason: String(reason ?? '') })
    entry.notify()
  })
  provider.on('connection-error', (event) => {
    s.connectionErrors++
    s.lastError = String(event?.message ?? event?.error?.message ?? 'connection error')
    pushEvent(name, 'error', { message: s.lastError })
    entry.notify()
  })
  provider.awareness.on('change', () => entry.notify())
  entry.doc.on('update', () => entry.notify())
}

// ---- argument helpers ----------------------------------------------------------------------

const need = (args, key, type) => {
  const v = args[key]
  if (type === 'integer') {
    if (!Number.isInteger(v) || v < 0) throw new RequestError(`'${key}' must be a non-negative integer`)
  } else if (type === 'array') {
    if (!Array.isArray(v)) throw new RequestError(`'${key}' must be an array`)
  } else if (type === 'object') {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new RequestError(`'${key}' must be an object`)
  } else if (typeof v !== type) { // eslint-disable-line valid-typeof
    throw new RequestError(`'${key}' must be a ${type}`)
  }
  return v
}

const optional = (args, key, type, fallback) => (args[key] === undefined || args[key] === null) ? fallback : need(args, key, type)

const entryOf = (args) => {
  const name = need(args, 'client', 'string')
  const entry = clients.get(name)
  if (entry === undefined) throw new RequestError(`no client named '${name}'`)
  return entry
}

const providerOf = (entry) => {
  if (entry.provider === null) throw new RequestError(`client ${entry.name} has no provider`)
  return entry.provider
}

const stringMap = (obj, key) => {
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v !== 'string') throw new RequestError(`'${key}.${k}' must be a string`)
  }
  return obj
}

/** Structural equality of JSON values (key order ignored). */
const jsonEqual = (a, b) => {
  if (a === b) return true
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) return a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]))
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]))
}

/**
 * Resolves with `check()`'s value as soon as it is not `undefined`, re-checking whenever the
 * client notifies a change; rejects after `timeoutMs` with `describe()`.
 */
const waitFor = (entry, timeoutMs, check, describe) => new Promise((resolve, reject) => {
  const first = check()
  if (first !== undefined) return resolve(first)
  let timer = null
  const waiter = (destroyed) => {
    if (destroyed instanceof Error) {
      entry.waiters.delete(waiter)
      clearTimeout(timer)
      return reject(destroyed)
    }
    let value
    try {
      value = check()
    } catch (e) {
      entry.waiters.delete(waiter)
      clearTimeout(timer)
      return reject(e)
    }
    if (value !== undefined) {
      entry.waiters.delete(waiter)
      clearTimeout(timer)
      resolve(value)
    }
  }
  timer = setTimeout(() => {
    entry.waiters.delete(waiter)
    reject(new RequestError(`timed out after ${timeoutMs} ms: ${describe()}`))
  }, timeoutMs)
  entry.waiters.add(waiter)
})

/**
 * `match` is a partial status: each field must equal the given value, or, for a value
 * `{"atLeast": n}`, be a number >= n.
 */
const statusMatches = (status, match) => Object.entries(match).every(([k, want]) => {
  if (want !== null && typeof want === 'object' && !Array.isArray(want) && Object.hasOwn(want, 'atLeast')) {
    return typeof status[k] === 'number' && status[k] >= want.atLeast
  }
  return jsonEqual(status[k], want)
})

// ---- commands ------------------------------------------------------------------------------

const commands = {
  ping: () => 'pong',

  connect: (args) => {
    const name = need(args, 'client', 'string')
    if (clients.has(name)) throw new RequestError(`client '${name}' already exists`)
    const url = need(args, 'url', 'string')
    const doc = need(args, 'doc', 'string')
    const params = stringMap(optional(args, 'params', 'object', {}), 'params')
    const headers = stringMap(optional(args, 'headers', 'object', {}), 'headers')
    const protocols = optional(args, 'protocols', 'array', [])
    if (!protocols.every((p) => typeof p === 'string')) {
      throw new RequestError("'protocols' must be an array of strings")
    }
    const maxBackoffTime = optional(args, 'maxBackoffMs', 'integer', 2500)
    const entry = new ClientEntry(name)
    // connect: false, so that the listeners see the first `connecting` status too
    const provider = new WebsocketProvider(url, doc, entry.doc, {
      connect: false,
      params,
      protocols,
      WebSocketPolyfill: socketClass(entry, headers),
      disableBc: true,
      maxBackoffTime
    })
    entry.provider = provider
    wireEvents(entry, provider)
    if (args.awareness !== undefined) provider.awareness.setLocalState(args.awareness)
    clients.set(name, entry)
    provider.connect()
    return { clientId: entry.doc.clientID, url: provider.url }
  },

  clientId: (args) => entryOf(args).doc.clientID,

  insert: (args) => {
    const entry = entryOf(args)
    const index = need(args, 'index', 'integer')
    const text = need(args, 'text', 'string')
    if (index > entry.text.length) throw new RequestError(`index ${index} is past the end (length ${entry.text.length})`)
    entry.text.insert(index, text)
    return null
  },

  delete: (args) => {
    const entry = entryOf(args)
    const index = need(args, 'index', 'integer')
    const len = need(args, 'len', 'integer')
    if (index + len > entry.text.length) throw new RequestError(`range ${index}+${len} is past the end (length ${entry.text.length})`)
    entry.text.delete(index, len)
    return null
  },

  text: (args) => entryOf(args).text.toString(),

  waitText: (args) => {
    const entry = entryOf(args)
    const want = need(args, 'text', 'string')
    const timeoutMs = optional(args, 'timeoutMs', 'integer', DEFAULT_TIMEOUT_MS)
    return waitFor(entry, timeoutMs,
      () => entry.text.toString() === want ? want : undefined,
      () => `text is ${JSON.stringify(entry.text.toString().slice(0, 500))}, want ${JSON.stringify(want.slice(0, 500))}`)
  },

  synced: (args) => {
    const entry = entryOf(args)
    return entry.provider !== null && entry.provider.synced
  },

  waitSynced: (args) => {
    const entry = entryOf(args)
    const timeoutMs = optional(args, 'timeoutMs', 'integer', DEFAULT_TIMEOUT_MS)
    return waitFor(entry, timeoutMs,
      () => providerOf(entry).synced ? true : undefined,
      () => `client ${entry.name} not synced; status ${JSON.stringify(entry.status())}`)
  },

  status: (args) => entryOf(args).status(),

  waitStatus: (args) => {
    const entry = entryOf(args)
    const match = need(args, 'match', 'object')
    const timeoutMs = optional(args, 'timeoutMs', 'integer', DEFAULT_TIMEOUT_MS)
    return waitFor(entry, timeoutMs,
      () => { const s = entry.status(); return statusMatches(s, match) ? s : undefined },
      () => `status ${JSON.stringify(entry.status())} does not match ${JSON.stringify(match)}`)
  },

  setAwareness: (args) => {
    const provider = providerOf(entryOf(args))
    if (!Object.hasOwn(args, 'state')) throw new RequestError("'state' is required (null removes the local state)")
    provider.awareness.setLocalState(args.state)
    return null
  },

  setAwarenessField: (args) => {
    const provider = providerOf(entryOf(args))
    const field = need(args, 'field', 'string')
    provider.awareness.setLocalStateField(field, args.value ?? null)
    return null
  },

  awareness: (args) => entryOf(args).awarenessStates(),

  // Waits until the state of `clientId` equals `state`, or, with `state` absent or null, until
  // `clientId` is present (`present`, default true) or gone (`present: false`).
  waitAwareness: (args) => {
    const entry = entryOf(args)
    const clientId = need(args, 'clientId', 'integer')
    const present = optional(args, 'present', 'boolean', true)
    const state = args.state ?? null
    const timeoutMs = optional(args, 'timeoutMs', 'integer', DEFAULT_TIMEOUT_MS)
    return waitFor(entry, timeoutMs, () => {
      const states = entry.awarenessStates()
      const has = Object.hasOwn(states, String(clientId))
      if (!present) return has ? undefined : states
      if (!has) return undefined
      if (state !== null && !jsonEqual(states[String(clientId)], state)) return undefined
      return states
    }, () => `awareness of ${entry.name} is ${JSON.stringify(entry.awarenessStates())}; waiting for ${clientId} ${present ? (state !== null ? '= ' + JSON.stringify(state) : 'present') : 'gone'}`)
  },

  // The whole document as a Yjs v1 update, as an array of bytes.
  encodeState: (args) => Array.from(Y.encodeStateAsUpdate(entryOf(args).doc)),

  disconnect: (args) => {
    providerOf(entryOf(args)).disconnect()
    return null
  },

  reconnect: (args) => {
    const entry = entryOf(args)
    entry.stats.terminalClose = null
    providerOf(entry).connect()
    return null
  },

  destroy: (args) => {
    const entry = entryOf(args)
    clients.delete(entry.name)
    entry.destroy()
    return null
  },

  list: () => [...clients.keys()]
}

// ---- main loop -----------------------------------------------------------------------------

let quitting = false

const destroyAll = () => {
  for (const entry of clients.values()) {
    try {
      entry.destroy()
    } catch (e) {
      console.error(`driver: destroying ${entry.name}: ${e?.stack ?? e}`)
    }
  }
  clients.clear()
}

const quit = (code) => {
  if (quitting) return
  quitting = true
  destroyAll()
  // give the sockets' close frames a moment to leave
  setTimeout(() => process.exit(code), 50)
}

const handleLine = async (line) => {
  if (line.trim() === '') return
  let req
  try {
    req = JSON.parse(line)
  } catch (e) {
    send({ id: null, error: `bad JSON: ${e.message}` })
    return
  }
  const id = req?.id ?? null
  if (req === null || typeof req !== 'object' || typeof req.cmd !== 'string') {
    send({ id, error: "request must be an object with a string 'cmd'" })
    return
  }
  if (req.cmd === 'quit') {
    send({ id, result: null })
    quit(0)
    return
  }
  const command = Object.hasOwn(commands, req.cmd) ? commands[req.cmd] : undefined
  if (command === undefined) {
    send({ id, error: `unknown command '${req.cmd}'` })
    return
  }
  try {
    const result = await command(req)
    send({ id, result: result === undefined ? null : result })
  } catch (e) {
    if (!(e instanceof RequestError)) console.error(`driver: ${req.cmd} failed: ${e?.stack ?? e}`)
    send({ id, error: `${req.cmd}: ${e?.message ?? String(e)}` })
  }
}

process.on('uncaughtException', (e) => {
  console.error(`driver: uncaught exception: ${e?.stack ?? e}`)
  send({ event: 'uncaught', message: String(e?.message ?? e) })
})
process.on('unhandledRejection', (e) => {
  console.error(`driver: unhandled rejection: ${e?.stack ?? e}`)
  send({ event: 'uncaught', message: String(e?.message ?? e) })
})

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
rl.on('line', (line) => { handleLine(line) })
// The parent went away: do not linger.
rl.on('close', () => quit(0))

send({
  event: 'ready',
  node: process.versions.node,
  versions: {
    yjs: versionOf('yjs'),
    'y-websocket': versionOf('y-websocket'),
    'y-protocols': versionOf('y-protocols'),
    ws: versionOf('ws')
  }
})
