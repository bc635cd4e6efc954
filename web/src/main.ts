// Placeholder until the dashboard SPA lands: shows the server's health.
const app = document.getElementById('app')
if (app) {
  app.innerHTML = '<h1>clincus</h1><p id="health">checking…</p>'
  fetch('/api/health')
    .then(async (r) => (await r.json()) as { version: string; incus: { reachable: boolean } })
    .then((h) => {
      const el = document.getElementById('health')
      if (el)
        el.textContent = `version ${h.version}; Incus ${h.incus.reachable ? 'reachable' : 'unavailable'}`
    })
    .catch(() => undefined)
}
