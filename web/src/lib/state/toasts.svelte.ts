// Short notices in an aria-live region: errors stay until dismissed, the rest fade after a while.
export type ToastKind = 'info' | 'success' | 'error'

export interface Toast {
  id: number
  kind: ToastKind
  message: string
}

export class ToastsStore {
  items: Toast[] = $state.raw([])
  #next = 1
  #timers: Record<number, ReturnType<typeof setTimeout>> = {}

  push(kind: ToastKind, message: string, timeoutMs = kind === 'error' ? 0 : 5000): number {
    const id = this.#next++
    // The same message twice in a row is one toast.
    const last = this.items.at(-1)
    if (last && last.kind === kind && last.message === message) return last.id
    this.items = [...this.items.slice(-4), { id, kind, message }]
    if (timeoutMs > 0)
      this.#timers[id] = setTimeout(() => {
        this.dismiss(id)
      }, timeoutMs)
    return id
  }

  error(message: string): number {
    return this.push('error', message)
  }

  dismiss(id: number): void {
    const t = this.#timers[id]
    if (t) clearTimeout(t)
    Reflect.deleteProperty(this.#timers, id)
    this.items = this.items.filter((i) => i.id !== id)
  }
}
