// The typed REST client. Every response is checked against the shared schema it is declared with
// (parse at the boundary), and every failure becomes an ApiError whose message is meant for people:
// the server's `{error, code}` body when it sent one, a plain sentence otherwise — never raw JSON.
// Nothing here retries: POST/DELETE are not idempotent (the original retried them and could start
// four containers for one click, clincus-behaviour §1.2), and GETs are re-run by the callers when
// the events socket reconnects.
import { Type, type Static, type TSchema } from 'typebox'
import { Value } from 'typebox/value'
import {
  SignInResponseSchema,
  TicketResponseSchema,
  type SignInBody,
} from '../../../shared/schemas/auth.ts'
import { ErrorBodySchema } from '../../../shared/schemas/common.ts'
import { ConfigSchema, type Config, type ConfigUpdate } from '../../../shared/schemas/config.ts'
import { HealthSchema, type Health } from '../../../shared/schemas/health.ts'
import {
  HistoryEntrySchema,
  ResumeResponseSchema,
  type CreateSessionBody,
  type HistoryEntry,
} from '../../../shared/schemas/sessions.ts'
import {
  CreateFolderResponseSchema,
  RootsSchema,
  WorkspaceListSchema,
  type Roots,
  type WorkspaceList,
} from '../../../shared/schemas/workspaces.ts'
import { wsUrl } from './backoff.ts'
import {
  ImageListSchema,
  NetworkAllowResponseSchema,
  SessionListSchema,
  SessionNetworkSchema,
  SessionSchema,
  type ImageInfo,
  type Session,
  type SessionNetwork,
} from './schemas.ts'

export class ApiError extends Error {
  /** HTTP status; 0 when the server could not be reached. */
  readonly status: number
  /** The server's stable error code, or one of ours: `network`, `bad_response`, `http_<status>`. */
  readonly code: string

  constructor(status: number, code: string, message: string) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
  }
}

const STATUS_TEXT: Record<number, string> = {
  400: 'The request was not accepted',
  401: 'You are not signed in',
  403: 'This is not allowed',
  404: 'Not found',
  405: 'This action is not supported by the server',
  409: 'This conflicts with the current state',
  413: 'The request is too large',
  415: 'The request was sent in a format the server does not accept',
  429: 'Too many requests; wait a moment and try again',
  500: 'The server failed while handling the request',
  502: 'The server could not talk to Incus',
  503: 'The server is not ready yet; try again in a moment',
  504: 'The server timed out',
}

/** A human sentence for a failed response: the `{error}` body when present, else the status. */
export function messageForResponse(status: number, body: unknown, text: string): ApiError {
  if (Value.Check(ErrorBodySchema, body)) return new ApiError(status, body.code, body.error)
  // A bare `{error}` (the contract's shape, without our code) is still a readable message.
  if (typeof body === 'object' && body !== null && 'error' in body) {
    const error: unknown = body.error
    if (typeof error === 'string' && error !== '')
      return new ApiError(status, `http_${status}`, error)
  }
  const plain = text.trim()
  const generic =
    STATUS_TEXT[status] ?? (status >= 500 ? 'The server failed' : 'The request failed')
  // Short plain-text bodies (a proxy's "Bad Gateway", a text/plain error) are worth showing;
  // HTML pages and JSON we could not read are not.
  const showable =
    plain !== '' && plain.length <= 200 && !plain.startsWith('<') && !plain.startsWith('{')
  return new ApiError(
    status,
    `http_${status}`,
    showable ? `${generic}: ${plain}` : `${generic} (HTTP ${status})`,
  )
}

/** The message to show for anything a request (or other async work) rejected with. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message || err.name
  if (typeof err === 'string') return err
  return 'Something went wrong'
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE'
type Query = Record<string, string | number | boolean | undefined>

export interface RequestOptions {
  query?: Query
  body?: unknown
  signal?: AbortSignal
}

/** Where the page keeps its sign-in session secret. */
export interface CredentialStore {
  get(): string | null
  set(secret: string | null): void
}

const SESSION_KEY = 'clincus.session'

/**
 * The page's own localStorage: per scheme, host **and port**, so another server on this host
 * (a second clincus, or another user's listener) never sees it, unlike a cookie.
 */
export function localCredentialStore(): CredentialStore {
  const storage = (): Storage | null => {
    try {
      return typeof localStorage === 'undefined' ? null : localStorage
    } catch {
      return null
    }
  }
  let memory: string | null = null
  return {
    get: () => storage()?.getItem(SESSION_KEY) ?? memory,
    set: (secret) => {
      memory = secret
      const s = storage()
      if (!s) return
      if (secret === null) s.removeItem(SESSION_KEY)
      else s.setItem(SESSION_KEY, secret)
    },
  }
}

/** A store that forgets on reload (tests, and pages without storage). */
export function memoryCredentialStore(initial: string | null = null): CredentialStore {
  let secret = initial
  return {
    get: () => secret,
    set: (v) => {
      secret = v
    },
  }
}

export class ApiClient {
  readonly #fetch: typeof fetch
  readonly #base: string
  readonly #credentials: CredentialStore
  /** Called when any request is refused for want of a credential (the page shows the sign-in). */
  onUnauthorized: (() => void) | null = null

  constructor(fetchImpl?: typeof fetch, base = '', credentials?: CredentialStore) {
    // Bound lazily so tests can stub globalThis.fetch after the client was built.
    this.#fetch = fetchImpl ?? ((input, init) => globalThis.fetch(input, init))
    this.#base = base
    this.#credentials = credentials ?? memoryCredentialStore()
  }

  /** Whether the page holds a sign-in session (it may still have expired on the server). */
  get signedIn(): boolean {
    return this.#credentials.get() !== null
  }

  /** A request whose success body must match `schema`. */
  async json<S extends TSchema>(
    method: Method,
    path: string,
    schema: S,
    opts: RequestOptions = {},
  ): Promise<Static<S>> {
    const { status, body } = await this.#send(method, path, opts)
    if (!Value.Check(schema, body)) {
      throw new ApiError(
        status,
        'bad_response',
        `The server sent an unexpected response for ${method} ${path}`,
      )
    }
    return body
  }

  /** A request answered with no body (204). */
  async empty(method: Method, path: string, opts: RequestOptions = {}): Promise<void> {
    await this.#send(method, path, opts)
  }

  async #send(
    method: Method,
    path: string,
    opts: RequestOptions,
  ): Promise<{ status: number; body: unknown }> {
    let url = this.#base + path
    if (opts.query) {
      const params = new URLSearchParams()
      for (const [k, v] of Object.entries(opts.query)) if (v !== undefined) params.set(k, String(v))
      const qs = params.toString()
      if (qs) url += `?${qs}`
    }
    const headers: Record<string, string> = { accept: 'application/json' }
    // The credential is a header, never a cookie: nothing is sent that the page did not add.
    const secret = this.#credentials.get()
    if (secret !== null) headers.authorization = `Bearer ${secret}`
    const init: RequestInit = { method, headers, credentials: 'omit' }
    if (opts.signal) init.signal = opts.signal
    if (opts.body !== undefined) {
      // Only JSON bodies are accepted by the server (a form or text/plain POST gets 415).
      headers['content-type'] = 'application/json'
      init.body = JSON.stringify(opts.body)
    }
    let res: Response
    try {
      res = await this.#fetch(url, init)
    } catch (err) {
      if (err instanceof DOMException && err.name === 'AbortError') throw err
      throw new ApiError(
        0,
        'network',
        'Cannot reach the clincus server. Check that it is still running.',
      )
    }
    const text = await res.text().catch(() => '')
    let body: unknown = undefined
    if (text !== '') {
      try {
        body = JSON.parse(text)
      } catch {
        body = undefined
      }
    }
    if (!res.ok) {
      const err = messageForResponse(res.status, body, text)
      if (res.status === 401 && path !== '/api/auth/login') {
        // The session expired or was revoked: forget it and ask again.
        this.#credentials.set(null)
        this.onUnauthorized?.()
      }
      throw err
    }
    return { status: res.status, body }
  }

  config(): Promise<Config> {
    return this.json('GET', '/api/config', ConfigSchema)
  }

  /**
   * Saves dashboard settings; resolves to the merged config after the save when the answer
   * carries it (issue 15: `{status, config}`; a bare config is read too), else null: an older
   * server answers only `{status}`, and the caller GETs the config.
   */
  async updateConfig(patch: ConfigUpdate): Promise<Config | null> {
    const body = await this.json('PUT', '/api/config', Type.Unknown(), { body: patch })
    if (Value.Check(ConfigSchema, body)) return body
    if (typeof body === 'object' && body !== null && 'config' in body) {
      const config: unknown = body.config
      if (Value.Check(ConfigSchema, config)) return config
    }
    return null
  }

  tools(): Promise<string[]> {
    return this.json('GET', '/api/tools', Type.Array(Type.String()))
  }

  sessions(): Promise<Session[]> {
    return this.json('GET', '/api/sessions', SessionListSchema)
  }

  createSession(body: CreateSessionBody): Promise<Session> {
    return this.json('POST', '/api/sessions', SessionSchema, { body })
  }

  /** A session's egress policy and its connections, newest first (`limit` 1..1000). */
  sessionNetwork(id: string, limit = 1000, offset = 0): Promise<SessionNetwork> {
    return this.json(
      'GET',
      `/api/sessions/${encodeURIComponent(id)}/network`,
      SessionNetworkSchema,
      {
        query: { limit, offset },
      },
    )
  }

  /**
   * Adds one entry (`example.com`, `*.example.com`, `host:port`) to `[network] allow` in the
   * user's config file; answers the list now in that file. 400 `invalid_network_entry` when the
   * server's policy parser refuses the entry.
   */
  async allowNetwork(entry: string): Promise<string[]> {
    const res = await this.json('POST', '/api/network/allow', NetworkAllowResponseSchema, {
      body: { entry },
    })
    return res.allow
  }

  images(): Promise<ImageInfo[]> {
    return this.json('GET', '/api/images', ImageListSchema)
  }

  /** Starts a rebuild (202); `update` also installs the newest agent versions. 409 while one runs. */
  buildImage(alias: string, update = false): Promise<void> {
    return this.empty('POST', `/api/images/${encodeURIComponent(alias)}/build`, {
      body: update ? { update: true } : {},
    })
  }

  /** Stops the session (its container stays, stopped); with force, deletes the container. */
  deleteSession(id: string, force = false): Promise<void> {
    return this.empty('DELETE', `/api/sessions/${encodeURIComponent(id)}`, {
      query: force ? { force: true } : {},
    })
  }

  resumeSession(id: string): Promise<Static<typeof ResumeResponseSchema>> {
    return this.json('POST', `/api/sessions/${encodeURIComponent(id)}/resume`, ResumeResponseSchema)
  }

  history(limit: number, offset: number): Promise<HistoryEntry[]> {
    return this.json('GET', '/api/sessions/history', Type.Array(HistoryEntrySchema), {
      query: { limit, offset },
    })
  }

  workspaces(): Promise<WorkspaceList> {
    return this.json('GET', '/api/workspaces', WorkspaceListSchema)
  }

  addRoot(path: string): Promise<Roots> {
    return this.json('POST', '/api/workspaces', RootsSchema, { body: { path } })
  }

  removeRoot(path: string): Promise<Roots> {
    return this.json('DELETE', '/api/workspaces', RootsSchema, { body: { path } })
  }

  createFolder(root: string, name: string): Promise<Static<typeof CreateFolderResponseSchema>> {
    return this.json('POST', '/api/workspaces/folder', CreateFolderResponseSchema, {
      body: { root, name },
    })
  }

  /** Trades the token or a sign-in code for a sign-in session, kept in this origin's storage. */
  async signIn(body: SignInBody): Promise<void> {
    const res = await this.json('POST', '/api/auth/login', SignInResponseSchema, { body })
    this.#credentials.set(res.session)
  }

  /** Revokes the sign-in session on the server and forgets it here. */
  async signOut(): Promise<void> {
    try {
      if (this.#credentials.get() !== null) await this.empty('DELETE', '/api/auth/session')
    } finally {
      this.#credentials.set(null)
    }
  }

  /**
   * The URL of a WebSocket on this server, with a fresh single-use ticket (a browser cannot put
   * a header on a WebSocket; the ticket is good once, for 30 s).
   */
  async socketUrl(path: string): Promise<string> {
    const { ticket } = await this.json('POST', '/api/auth/ticket', TicketResponseSchema)
    const url = this.#base ? this.#base.replace(/^http/, 'ws') + path : wsUrl(path)
    return `${url}${url.includes('?') ? '&' : '?'}ticket=${encodeURIComponent(ticket)}`
  }

  health(): Promise<Health> {
    return this.json('GET', '/api/health', HealthSchema)
  }
}
