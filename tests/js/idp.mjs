// A real OpenID provider for Dure's black-box tests: npm `oidc-provider` (OpenID-certified)
// configured for loopback use, with non-interactive logins and a few test-only endpoints.
// The Rust side is tests/src/idp.rs; nothing here is fit for production.
//
//   node idp.mjs --port 0 --keys KEYS.json [--state STATE.json] [--rotate]
//                [--client-id dure-web] [--client-secret S] [--redirect-uri URI]...
//                [--post-logout-redirect-uri URI]... [--cli-client-id dure-cli]
//                [--audience urn:dure] [--access-ttl 300] [--id-ttl 600] [--refresh-ttl 86400]
//
// stdout carries exactly one line, `listening on http://127.0.0.1:PORT`, once requests are
// served; everything else (request log, provider notices, errors) goes to stderr. The issuer
// is exactly `http://127.0.0.1:PORT`. SIGTERM (or SIGINT) stops it.
//
// Clients
//   dure-web (--client-id): confidential (client_secret_basic or client_secret_post), code +
//     refresh_token grants, PKCE S256 required. With --redirect-uri its redirect URIs are those
//     exactly (application_type web); without, any port of http://127.0.0.1/auth/callback is
//     accepted (application_type native, RFC 8252 loopback matching). Post-logout redirect URIs
//     likewise (--post-logout-redirect-uri; default any port of http://127.0.0.1/).
//   dure-cli (--cli-client-id): public (no secret), PKCE, redirect http://127.0.0.1:ANY/cb.
//   Both always get a refresh token (the issueRefreshToken hook), offline_access or not;
//   --refresh-ttl 0 turns refresh tokens off.
//
// Access tokens are JWTs (header typ at+jwt, RS256, the signing key's kid) for the audience
// (--audience) on every authorization-code and refresh grant: resource indicators are on, the
// audience is every request's default resource and is reused at the token endpoint without a
// `resource` parameter. Payload: iss, sub, aud, client_id, scope, iat, exp, jti, plus the
// user's name, email, email_verified and groups. Such tokens are refused by the userinfo endpoint (that is how
// oidc-provider treats tokens that have an audience): use the ID token's claims.
//
// Users (sub = login name): alice, bob (group finance), carol (hr), admin (dure-admins); eve
// (claims alice's address, email_verified false), dan and dana (one shared address, verified).
// Load accounts, for benchmarks that need many distinct people: any sub / login_hint matching
// ^load[0-9]{1,5}$ (load0 … load99999) is a valid account, name "Load N" (N as written after
// `load`), email loadN@example.gov (verified), no groups. Their sessions, grants, codes and
// tokens are kept in memory only, never in the state file (rewritten whole at every change,
// it would make thousands of sign-ins quadratic): they do not survive a restart.
// Scopes profile -> name, preferred_username; email -> email, email_verified; groups -> groups;
// these claims are also put in the ID token (conformIdTokenClaims: false).
//
// Logins never show a page: /interaction/UID completes the login for the account named by the
// authorization request's `login_hint` (400 error page when it is missing or unknown) and then
// the consent, granting everything requested. A browser session belonging to another account
// than `login_hint` is asked to log in again (the old session is ended, see logout), so
// `login_hint` always decides who signs in.
//
// RP-initiated logout (end_session_endpoint /session/end): oidc-provider answers with a form
// the user must submit (a confirmation when signed in, an auto-submitting form otherwise). A
// non-interactive HTTP client can run neither, so any answer holding a form that posts to
// /session/end/confirm is replaced by a 303 to /__test/logout-confirm?xsrf=..., which submits
// the provider's own confirmation (POST /session/end/confirm, logout=yes: session destroyed,
// grants and their tokens revoked) with the caller's cookies and relays the answer: a 303 to
// post_logout_redirect_uri?state=... when one was given and registered, else to
// /session/end/success. So: GET the end-session URL, follow two redirects. The same happens
// when a login switches accounts: the provider ends the old session with such a form and then
// resumes the authorization (two more redirects in that login).
//
// Test-only endpoints:
//   POST /__test/sign {"header": {...}, "claims": {...}, "key": "current"|"unpublished"}
//     -> {"token": compact JWS}. Header defaults {alg: RS256, typ: at+jwt, kid: the key's kid};
//     given members override them, a member set to null is removed. alg "none" gives an
//     unsigned `header.payload.`; an HS* alg is keyed with the chosen key's public SPKI PEM
//     (the classic algorithm-confusion forgery); other algs sign with the chosen RSA key.
//     Claims are used exactly as given (nothing is added).
//   GET /__test/keys -> the public JWKS the provider publishes (same as /jwks).
//   POST /__test/stall-jwks {"ms": N} -> 204; for the next N ms, GET /jwks answers only once
//     that time is up (a provider hanging while a relying party refetches its keys).
//   GET /__test/logout-confirm?xsrf=... (see logout above).
//
// Keys file (--keys): {"keys": [private JWKs], "unpublished": private JWK, "cookie_keys": [..]}.
// Missing file: created with one RS256 signing key, an unpublished key and a cookie key.
// keys[0] signs; every member of keys is published. `unpublished` is a key /__test/sign can use
// that the JWKS does not hold. --rotate (key rotation): once the port is bound and before the
// provider starts, the unpublished key becomes keys[0] (signing, published), the old keys stay
// published after it, a new unpublished key is generated, and the file is rewritten.
//
// State file (--state): the provider's sessions, grants, codes and tokens are kept in this JSON
// file (rewritten on each change), so a restart (e.g. for rotation) keeps sessions and refresh
// tokens valid. Without it they live in memory.

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import { parseArgs } from 'node:util'
import * as jose from 'jose'
import Provider, { errors, interactionPolicy } from 'oidc-provider'

// stdout is the one "listening" line: whatever libraries print goes to stderr.
console.log = (...args) => console.error(...args)
console.info = (...args) => console.error(...args)
console.debug = (...args) => console.error(...args)

const die = (message) => {
  console.error(`idp: ${message}`)
  process.exit(2)
}

// oidc-provider 9 calls URL.parse (node 20.18 and later); fail here rather than mid-request.
if (typeof URL.parse !== 'function') {
  die(`node ${process.version} is too old for oidc-provider 9: node >= 20.18 is needed (infra/install-test-deps.sh node)`)
}

const { values: opts } = (() => {
  try {
    return parseArgs({
      options: {
        port: { type: 'string', default: '0' },
        keys: { type: 'string' },
        state: { type: 'string' },
        rotate: { type: 'boolean', default: false },
        'client-id': { type: 'string', default: 'dure-web' },
        'client-secret': { type: 'string', default: 'dure-web-secret' },
        'cli-client-id': { type: 'string', default: 'dure-cli' },
        'redirect-uri': { type: 'string', multiple: true, default: [] },
        'post-logout-redirect-uri': { type: 'string', multiple: true, default: [] },
        audience: { type: 'string', default: 'urn:dure' },
        'access-ttl': { type: 'string', default: '300' },
        'id-ttl': { type: 'string', default: '600' },
        'refresh-ttl': { type: 'string', default: '86400' }
      },
      strict: true
    })
  } catch (e) {
    return die(e.message)
  }
})()

const seconds = (name) => {
  const v = Number(opts[name])
  if (!Number.isInteger(v) || v < 0) die(`--${name} must be a whole number of seconds, not ${opts[name]}`)
  return v
}
const port = Number(opts.port)
if (!Number.isInteger(port) || port < 0 || port > 65535) die(`--port must be 0-65535, not ${opts.port}`)
const accessTtl = seconds('access-ttl')
const idTtl = seconds('id-ttl')
const refreshTtl = seconds('refresh-ttl')
if (accessTtl === 0 || idTtl === 0) die('--access-ttl and --id-ttl must be at least 1')
const audience = opts.audience

const USERS = {
  alice: { name: 'Alice Kim', email: 'alice@example.gov', verified: true, groups: ['finance'] },
  bob: { name: 'Bob Lee', email: 'bob@example.gov', verified: true, groups: ['finance'] },
  carol: { name: 'Carol Park', email: 'carol@example.gov', verified: true, groups: ['hr'] },
  admin: { name: 'Admin Choi', email: 'admin@example.gov', verified: true, groups: ['dure-admins'] },
  // Claims alice's address without the provider having verified it.
  eve: { name: 'Eve Moss', email: 'alice@example.gov', verified: false, groups: [] },
  // Two people on one (verified) shared mailbox.
  dan: { name: 'Dan Reyes', email: 'ops@example.gov', verified: true, groups: [] },
  dana: { name: 'Dana Ito', email: 'ops@example.gov', verified: true, groups: [] }
}
const SCOPES = 'openid profile email groups offline_access'

// A load account (see the header): load0 … load99999.
const LOAD_ACCOUNT = /^load[0-9]{1,5}$/
const isLoadAccount = (sub) => typeof sub === 'string' && LOAD_ACCOUNT.test(sub)

// The account named `sub`: one of USERS or a load account; undefined for anyone else.
const accountOf = (sub) => {
  if (typeof sub !== 'string') return undefined
  if (Object.hasOwn(USERS, sub)) return USERS[sub]
  if (isLoadAccount(sub)) {
    return { name: `Load ${sub.slice(4)}`, email: `${sub}@example.gov`, verified: true, groups: [] }
  }
  return undefined
}

// ---- files -------------------------------------------------------------------------------

// Written whole to a temporary file and renamed, so a kill never leaves half a file.
const writeJson = (file, value) => {
  const tmp = `${file}.${process.pid}.tmp`
  writeFileSync(tmp, JSON.stringify(value, null, 1) + '\n', { mode: 0o600 })
  renameSync(tmp, file)
}

const readJson = (file, what) => {
  try {
    return JSON.parse(readFileSync(file, 'utf8'))
  } catch (e) {
    return die(`cannot read ${what} ${file}: ${e.message}`)
  }
}

// ---- listen ------------------------------------------------------------------------------

// The issuer holds the port, so listen first (port 0 = any free one) and build the provider
// once the port is known; nothing is announced before it is attached. Listening comes before
// --rotate touches the keys file, so a restart that cannot bind its port yet can be retried
// with --rotate without rotating twice.
const server = http.createServer()
await new Promise((resolve, reject) => {
  server.once('error', reject)
  server.listen(port, '127.0.0.1', resolve)
}).catch((e) => die(`cannot listen on 127.0.0.1:${port}: ${e.message}`))
const issuer = `http://127.0.0.1:${server.address().port}`

// ---- keys --------------------------------------------------------------------------------

const newSigningKey = async () => {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true, modulusLength: 2048 })
  const jwk = await jose.exportJWK(privateKey)
  // The RFC 7638 thumbprint: unique per key, so a kid never names two keys across rotations.
  jwk.kid = await jose.calculateJwkThumbprint(jwk)
  return { ...jwk, alg: 'RS256', use: 'sig' }
}

const publicJwk = ({ d, p, q, dp, dq, qi, oth, ...pub }) => pub

const isPrivateRsa = (k) => k && typeof k === 'object' && k.kty === 'RSA' && typeof k.d === 'string' && typeof k.kid === 'string'

const loadKeys = async (file, rotate) => {
  const exists = file !== undefined && existsSync(file)
  const data = exists ? readJson(file, 'keys file') : {}
  let changed = !exists
  if (exists) {
    if (!Array.isArray(data.keys) || data.keys.length === 0 || !data.keys.every(isPrivateRsa)) {
      die(`keys file ${file}: "keys" must be a non-empty array of private RSA JWKs with a kid`)
    }
  } else {
    data.keys = [await newSigningKey()]
  }
  if (data.unpublished !== undefined && !isPrivateRsa(data.unpublished)) {
    die(`keys file ${file}: "unpublished" must be a private RSA JWK with a kid`)
  }
  if (data.unpublished === undefined) {
    data.unpublished = await newSigningKey()
    changed = true
  }
  if (!Array.isArray(data.cookie_keys) || data.cookie_keys.length === 0) {
    data.cookie_keys = [randomBytes(32).toString('base64url')]
    changed = true
  }
  if (rotate) {
    data.keys = [data.unpublished, ...data.keys]
    data.unpublished = await newSigningKey()
    changed = true
  }
  if (file !== undefined && changed) writeJson(file, data)
  return data
}

const keys = await loadKeys(opts.keys, opts.rotate)
const publishedJwks = { keys: keys.keys.map(publicJwk) }

// ---- storage -----------------------------------------------------------------------------

// oidc-provider's adapter interface over one JSON file (or memory): every model's records in
// one map keyed `Model:id`. Linear scans are fine for the handful of records a test makes.
// Records of load accounts live in a second map that is never written to the file.
const records = opts.state !== undefined && existsSync(opts.state) ? readJson(opts.state, 'state file') : {}
const loadRecords = new Map()
const persist = () => {
  if (opts.state !== undefined) writeJson(opts.state, records)
}
// Whether a record belongs to a load account: by its account, or, for an interaction not yet
// logged in, by the login_hint it carries.
const ofLoadAccount = (payload) => isLoadAccount(payload?.accountId) ||
  isLoadAccount(payload?.session?.accountId) || isLoadAccount(payload?.result?.login?.accountId) ||
  (payload?.accountId === undefined && isLoadAccount(payload?.params?.login_hint))
// Records outlive their expiry a little: the provider itself checks expiry, and reports an
// expired refresh token as such only if it can still find it.
const GRACE_MS = 60_000
const live = (key) => {
  const inMemory = loadRecords.has(key)
  const rec = inMemory ? loadRecords.get(key) : records[key]
  if (rec === undefined) return undefined
  if (rec.expiresAt !== null && rec.expiresAt + GRACE_MS < Date.now()) {
    if (inMemory) loadRecords.delete(key)
    else delete records[key]
    return undefined
  }
  return rec
}
// Removes a record wherever it is; whether the state file must be rewritten.
const forget = (key) => {
  loadRecords.delete(key)
  if (!Object.hasOwn(records, key)) return false
  delete records[key]
  return true
}

class StateAdapter {
  constructor (model) {
    this.model = model
  }

  key (id) {
    return `${this.model}:${id}`
  }

  * mine () {
    const prefix = `${this.model}:`
    for (const key of [...Object.keys(records), ...loadRecords.keys()]) {
      if (key.startsWith(prefix)) {
        const rec = live(key)
        if (rec !== undefined) yield [key, rec.payload]
      }
    }
  }

  async upsert (id, payload, expiresIn) {
    const key = this.key(id)
    const rec = {
      payload: structuredClone(payload),
      expiresAt: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : null
    }
    // A record that once belonged to a load account stays in memory (a session is saved
    // before its login, without an account).
    if (loadRecords.has(key) || ofLoadAccount(payload)) {
      loadRecords.set(key, rec)
      if (Object.hasOwn(records, key)) {
        delete records[key]
        persist()
      }
      return
    }
    records[key] = rec
    persist()
  }

  async find (id) {
    const rec = live(this.key(id))
    return rec === undefined ? undefined : structuredClone(rec.payload)
  }

  async findByUid (uid) {
    for (const [, payload] of this.mine()) {
      if (payload.uid === uid) return structuredClone(payload)
    }
    return undefined
  }

  async findByUserCode (userCode) {
    for (const [, payload] of this.mine()) {
      if (payload.userCode === userCode) return structuredClone(payload)
    }
    return undefined
  }

  async consume (id) {
    const key = this.key(id)
    const rec = live(key)
    if (rec !== undefined) {
      rec.payload.consumed = Math.floor(Date.now() / 1000)
      if (!loadRecords.has(key)) persist()
    }
  }

  async destroy (id) {
    if (forget(this.key(id))) persist()
  }

  async revokeByGrantId (grantId) {
    let changed = false
    for (const [key, payload] of [...this.mine()]) {
      if (payload.grantId === grantId) changed = forget(key) || changed
    }
    if (changed) persist()
  }
}

// ---- provider ----------------------------------------------------------------------------

const findAccount = async (_ctx, sub) => {
  const user = accountOf(sub)
  if (user === undefined) return undefined
  return {
    accountId: sub,
    // The provider keeps only the claims the granted scopes allow (see `claims` below).
    claims: async () => ({
      sub,
      name: user.name,
      preferred_username: sub,
      email: user.email,
      email_verified: user.verified,
      groups: [...user.groups]
    })
  }
}

// A session signed in as someone else than login_hint must log in again: tests pick the user
// with login_hint, and a reused cookie jar must not silently sign in the previous one.
const policy = interactionPolicy.base()
policy.get('login').checks.push(new interactionPolicy.Check(
  'login_hint_other_account',
  'the session belongs to another account than login_hint',
  'login_required',
  (ctx) => {
    const { oidc } = ctx
    const hint = oidc.params.login_hint
    if (oidc.result?.login !== undefined) return interactionPolicy.Check.NO_NEED_TO_PROMPT
    return hint !== undefined && oidc.session.accountId !== undefined && oidc.session.accountId !== hint
  }
))

const redirectUris = opts['redirect-uri']
const postLogoutUris = opts['post-logout-redirect-uri']
const webClient = {
  client_id: opts['client-id'],
  client_secret: opts['client-secret'],
  // native: oidc-provider then accepts any port on loopback redirect URIs (RFC 8252 7.3).
  application_type: redirectUris.length > 0 ? 'web' : 'native',
  redirect_uris: redirectUris.length > 0 ? redirectUris : ['http://127.0.0.1/auth/callback'],
  post_logout_redirect_uris: postLogoutUris.length > 0
    ? postLogoutUris
    : (redirectUris.length > 0 ? [] : ['http://127.0.0.1/']),
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic', // client_secret_post is accepted too
  scope: SCOPES
}
const cliClient = {
  client_id: opts['cli-client-id'],
  application_type: 'native',
  token_endpoint_auth_method: 'none',
  redirect_uris: ['http://127.0.0.1/cb'],
  post_logout_redirect_uris: ['http://127.0.0.1/cb'],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  scope: SCOPES
}

const errorPage = (title, fields) => {
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
  const rows = Object.entries(fields).map(([k, v]) => `<p><b>${esc(k)}</b>: ${esc(v)}</p>`).join('')
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1>${rows}</body></html>`
}

const configuration = {
  adapter: StateAdapter,
  clients: [webClient, cliClient],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'none'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups']
  },
  scopes: ['openid', 'offline_access'],
  conformIdTokenClaims: false,
  cookies: { keys: keys.cookie_keys },
  responseTypes: ['code'],
  pkce: { required: () => true },
  interactions: {
    policy,
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`
  },
  findAccount,
  // Refresh tokens for every code/refresh grant of a client allowed the grant, with or without
  // offline_access (which oidc-provider drops from the request unless prompt=consent).
  issueRefreshToken: async (_ctx, client) => refreshTtl > 0 && client.grantTypeAllowed('refresh_token'),
  extraTokenClaims: async (_ctx, token) => {
    const user = token.kind === 'AccessToken' ? accountOf(token.accountId) : undefined
    if (user === undefined) return undefined
    return { name: user.name, email: user.email, email_verified: user.verified, groups: [...user.groups] }
  },
  jwks: { keys: keys.keys },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      // Never shown: the end-session middleware below turns this answer into a redirect.
      logoutSource: async (ctx, form) => {
        ctx.body = `<!DOCTYPE html><html><body>${form}<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button></body></html>`
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.body = '<!DOCTYPE html><html><body><h1>Signed out</h1></body></html>'
      }
    },
    revocation: {
      enabled: true,
      allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => audience,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        if (indicator !== audience) throw new errors.InvalidTarget(`unknown resource ${indicator}`)
        return {
          scope: 'openid profile email groups',
          audience,
          accessTokenTTL: accessTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } }
        }
      }
    }
  },
  ttl: {
    AccessToken: accessTtl,
    AuthorizationCode: 60,
    IdToken: idTtl,
    RefreshToken: Math.max(refreshTtl, 1),
    Interaction: 600,
    Session: 24 * 3600,
    Grant: Math.max(refreshTtl, 24 * 3600)
  },
  clientBasedCORS: () => false,
  renderError: async (ctx, out) => {
    ctx.type = 'html'
    ctx.body = errorPage('OpenID provider error', out)
  }
}

// ---- test endpoints, interactions, logout ------------------------------------------------

const readBody = async (req) => {
  const chunks = []
  let size = 0
  for await (const chunk of req) {
    size += chunk.length
    if (size > 1 << 20) throw new Error('request body over 1 MiB')
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

const b64json = (value) => jose.base64url.encode(JSON.stringify(value))

const signTest = async ({ header = {}, claims = {}, key = 'current' } = {}) => {
  let jwk
  if (key === 'current') jwk = keys.keys[0]
  else if (key === 'unpublished') jwk = keys.unpublished
  else throw new Error(`key must be "current" or "unpublished", not ${JSON.stringify(key)}`)
  const protectedHeader = { alg: 'RS256', typ: 'at+jwt', kid: jwk.kid, ...header }
  for (const [k, v] of Object.entries(protectedHeader)) {
    if (v === null) delete protectedHeader[k]
  }
  const payload = new TextEncoder().encode(JSON.stringify(claims))
  const { alg } = protectedHeader
  if (alg === 'none') return `${b64json(protectedHeader)}.${jose.base64url.encode(payload)}.`
  if (typeof alg !== 'string') throw new Error('header.alg must be a string')
  let signingKey
  if (alg.startsWith('HS')) {
    const pub = await jose.importJWK({ ...publicJwk(jwk), alg: 'RS256' }, 'RS256', { extractable: true })
    signingKey = new TextEncoder().encode(await jose.exportSPKI(pub))
  } else {
    // Without the JWK's own alg, so the RSA key can be used with the alg asked for.
    const { alg: _ignored, ...bare } = jwk
    signingKey = await jose.importJWK(bare, alg)
  }
  return new jose.CompactSign(payload).setProtectedHeader(protectedHeader).sign(signingKey)
}

const json = (ctx, status, body) => {
  ctx.status = status
  ctx.type = 'application/json'
  ctx.body = JSON.stringify(body)
}

const completeInteraction = async (provider, ctx) => {
  let details
  try {
    details = await provider.interactionDetails(ctx.req, ctx.res)
  } catch (e) {
    ctx.status = 400
    ctx.type = 'html'
    ctx.body = errorPage('Interaction not found', { error: e.message })
    return
  }
  const { prompt, params, session } = details
  let result
  if (prompt.name === 'login') {
    const hint = params.login_hint
    if (accountOf(hint) === undefined) {
      ctx.status = 400
      ctx.type = 'html'
      ctx.body = errorPage('Sign-in refused', {
        error: hint === undefined
          ? 'the authorization request has no login_hint: this test provider signs in the account it names'
          : `unknown login_hint ${JSON.stringify(hint)}; known: ${Object.keys(USERS).join(', ')}, load0 … load99999`
      })
      return
    }
    result = { login: { accountId: hint } }
  } else if (prompt.name === 'consent') {
    const grant = details.grantId !== undefined
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id })
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '))
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims)
    for (const [indicator, scopes] of Object.entries(missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '))
    }
    result = { consent: { grantId: await grant.save() } }
  } else {
    ctx.status = 400
    ctx.type = 'html'
    ctx.body = errorPage('Unsupported prompt', { prompt: prompt.name })
    return
  }
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true })
  ctx.status = 303
  ctx.redirect(returnTo)
}

// Submits the provider's logout confirmation form for the caller (see the header).
const confirmLogout = async (issuer, ctx) => {
  const body = new URLSearchParams({ xsrf: String(ctx.query.xsrf ?? ''), logout: 'yes' }).toString()
  const answer = await new Promise((resolve, reject) => {
    const req = http.request(new URL('/session/end/confirm', issuer), {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'content-length': Buffer.byteLength(body),
        ...(ctx.get('cookie') ? { cookie: ctx.get('cookie') } : {})
      }
    }, (res) => {
      readBody(res).then((text) => resolve({ res, text }), reject)
    })
    req.on('error', reject)
    req.end(body)
  })
  ctx.status = answer.res.statusCode
  for (const cookie of answer.res.headers['set-cookie'] ?? []) ctx.append('Set-Cookie', cookie)
  if (answer.res.headers.location) ctx.set('Location', answer.res.headers.location)
  if (answer.res.headers['content-type']) ctx.type = answer.res.headers['content-type']
  ctx.body = answer.text
}

let stallJwksUntil = 0

// The request body as JSON ({} when empty); undefined after answering 400 when it is not JSON.
const jsonBody = async (ctx) => {
  try {
    return JSON.parse(await readBody(ctx.req) || '{}')
  } catch (e) {
    json(ctx, 400, { error: `body is not JSON: ${e.message}` })
    return undefined
  }
}

const testRoutes = (provider, issuer) => async (ctx, next) => {
  try {
    if (ctx.path === '/__test/stall-jwks' && ctx.method === 'POST') {
      const request = await jsonBody(ctx)
      if (request === undefined) return
      const ms = Number(request.ms)
      if (!Number.isInteger(ms) || ms < 0 || ms > 60_000) return json(ctx, 400, { error: 'ms must be 0-60000' })
      stallJwksUntil = Date.now() + ms
      ctx.status = 204
      return
    }
    if (ctx.path === '/jwks' && ctx.method === 'GET' && Date.now() < stallJwksUntil) {
      await new Promise((resolve) => setTimeout(resolve, stallJwksUntil - Date.now()))
    }
    if (ctx.path === '/__test/sign' && ctx.method === 'POST') {
      const request = await jsonBody(ctx)
      if (request === undefined) return
      try {
        return json(ctx, 200, { token: await signTest(request) })
      } catch (e) {
        return json(ctx, 400, { error: e.message })
      }
    }
    if (ctx.path === '/__test/keys' && ctx.method === 'GET') return json(ctx, 200, publishedJwks)
    if (ctx.path === '/__test/logout-confirm' && ctx.method === 'GET') return await confirmLogout(issuer, ctx)
    if (ctx.method === 'GET' && /^\/interaction\/[^/]+$/.test(ctx.path)) return await completeInteraction(provider, ctx)
  } catch (e) {
    console.error(`idp: ${ctx.method} ${ctx.path}: ${e.stack ?? e}`)
    ctx.status = 500
    ctx.type = 'html'
    ctx.body = errorPage('Test provider error', { error: e.message })
    return
  }

  await next()

  // The provider answered with a form that confirms a logout (see the header): redirect to
  // the endpoint that submits it instead.
  if (ctx.status === 200 && typeof ctx.body === 'string' && ctx.body.includes(`"${issuer}/session/end/confirm"`)) {
    const secret = ctx.oidc?.session?.state?.secret
    if (typeof secret === 'string') {
      ctx.status = 303
      ctx.redirect(`/__test/logout-confirm?xsrf=${encodeURIComponent(secret)}`)
    }
  }
}

const requestLog = async (ctx, next) => {
  const started = Date.now()
  try {
    await next()
  } finally {
    // The path only: queries carry codes and tokens, and the log is for reading.
    console.error(`idp: ${ctx.method} ${ctx.path} -> ${ctx.status} (${Date.now() - started} ms)`)
  }
}

// ---- start -------------------------------------------------------------------------------

let provider
try {
  provider = new Provider(issuer, configuration)
} catch (e) {
  die(`provider configuration refused: ${e.stack ?? e}`)
}
provider.use(requestLog)
provider.use(testRoutes(provider, issuer))
for (const event of ['server_error', 'authorization.error', 'grant.error', 'end_session.error',
  'end_session_confirm.error', 'userinfo.error', 'revocation.error', 'discovery.error', 'jwks.error']) {
  provider.on(event, (...args) => {
    const err = args.find((a) => a instanceof Error)
    console.error(`idp: ${event}: ${err ? `${err.message}${err.error_description ? ` (${err.error_description})` : ''}` : ''}`)
  })
}
server.on('request', provider.callback())

const stop = (signal) => {
  console.error(`idp: ${signal}, stopping`)
  // The state file is written at every change: nothing to flush.
  server.close(() => process.exit(0))
  server.closeAllConnections()
  setTimeout(() => process.exit(0), 2000).unref()
}
process.once('SIGTERM', () => stop('SIGTERM'))
process.once('SIGINT', () => stop('SIGINT'))

process.stdout.write(`listening on ${issuer}\n`)
