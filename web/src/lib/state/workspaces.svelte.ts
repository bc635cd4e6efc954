// Workspace roots and their projects. A folder made with "New project" has no project marker yet,
// so the server does not list it (clincus-behaviour §3.3); it is kept here until it does, so the
// user can still launch into it.
import type { Workspace, WorkspaceList } from '../../../../shared/schemas/workspaces.ts'
import { errorMessage, type ApiClient } from '../api.ts'
import { Refetch } from '../refetch.ts'

export const FOLDER_NAME = /^[a-z0-9]+(-[a-z0-9]+)*$/

/** Client-side check of the contract's folder-name rule; null when the name is fine. */
export function folderNameProblem(name: string): string | null {
  if (name === '') return 'Enter a name.'
  if (name.length > 128) return 'Use at most 128 characters.'
  if (!FOLDER_NAME.test(name))
    return 'Use lowercase letters, digits and single hyphens between them (e.g. my-project).'
  return null
}

export interface RootGroup {
  /** The root as configured (may start with ~). */
  raw: string
  /** The expanded absolute path the projects live in. */
  root: string
  projects: Workspace[]
}

export function basename(path: string): string {
  const trimmed = path.replace(/\/+$/, '')
  return trimmed.slice(trimmed.lastIndexOf('/') + 1) || trimmed || '/'
}

function byName(a: Workspace, b: Workspace): number {
  return a.name.localeCompare(b.name, undefined, { sensitivity: 'base' })
}

export class WorkspacesStore {
  data: WorkspaceList | null = $state.raw(null)
  loadError: string | null = $state(null)
  /** Folders created in this tab that the server does not list yet. */
  created: Workspace[] = $state.raw([])

  readonly groups: RootGroup[] = $derived.by(() => {
    const data = this.data
    if (!data) return []
    return data.expanded_roots.map((root, i) => {
      const listed = data.workspaces.filter((w) => w.root === root)
      const extra = this.created.filter(
        (c) => c.root === root && !listed.some((w) => w.path === c.path),
      )
      return { raw: data.roots[i] ?? root, root, projects: [...listed, ...extra].sort(byName) }
    })
  })

  readonly #api: ApiClient
  readonly #refetch = new Refetch(() => this.#fetch())
  /** Views showing the project list now (only they make a change of roots worth a fetch). */
  #watchers = 0
  /** The roots changed since the last fetch, and nobody was watching. */
  #stale = false

  constructor(api: ApiClient) {
    this.#api = api
  }

  /** GET /api/workspaces; concurrent calls share one request. */
  load(): Promise<void> {
    this.#stale = false
    return this.#refetch.run()
  }

  /**
   * The roots changed (a save, a reloaded config): refetch now if the list is on screen, else
   * when a view next watches it. Adding a root in Settings thus costs no project fetch there.
   */
  invalidate(): void {
    if (this.#watchers > 0) void this.load()
    else this.#stale = true
  }

  /** A view shows the project list from now on; returns the function that ends that. */
  watch(): () => void {
    this.#watchers++
    if (this.#stale) void this.load()
    let done = false
    return () => {
      if (done) return
      done = true
      this.#watchers--
    }
  }

  async #fetch(): Promise<void> {
    try {
      this.data = await this.#api.workspaces()
      this.loadError = null
    } catch (err) {
      this.loadError = errorMessage(err)
    }
  }

  /** Creates `root/name`; returns the new project's path. Server errors are thrown as is. */
  async createFolder(root: string, name: string): Promise<string> {
    const { path } = await this.#api.createFolder(root, name)
    this.created = [
      ...this.created,
      { path, name: basename(path), root, has_config: false, active_sessions: 0 },
    ]
    await this.load()
    return path
  }
}
